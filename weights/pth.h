// PyTorch checkpoints (`torch.save`): the zip format (PyTorch >= 1.6) and the legacy
// pre-zip format (magic number, protocol, sys_info, the object, storage keys, raw storages).
//
// The pickle is read by the restricted machine of weights/pickle.h, so loading a hostile
// file can fail but never execute anything. Tensors are found anywhere in the object:
// nested dicts give dotted names (`{"a": {"b": t}}` -> `a.b`), lists and tuples their
// indices; non-tensor values (epoch numbers, strings) are skipped. A checkpoint wrapping its
// weights (`{"state_dict": {...}, "epoch": 3}`, also `model_state_dict`, `model`, `net`) is
// unwrapped when the top level itself holds no tensors, so the names are the state_dict's.
// Strided and offset views are honoured; every view is bounds-checked against its storage.
#pragma once

#include <string>

#include "weights/byte_source.h"
#include "weights/tensor_map.h"

namespace cbst::weights {

TensorMap read_pth_zip(const ByteSource& src);
TensorMap read_pth_legacy(const ByteSource& src);
// Either, by content.
TensorMap read_pth(const ByteSource& src);
TensorMap read_pth(const std::string& path);

// First 15 bytes of a legacy checkpoint: the pickled magic number 0x1950a86a20f9469cfc6c.
inline constexpr uint8_t kLegacyPthMagic[15] = {0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46,
                                                0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E};

}  // namespace cbst::weights
