// MXNet NDArray files (`mx.nd.save`, `.params` of `save_checkpoint`).
// Ours: only MXNet itself reads this format, and linking a whole framework for it is out of scale.
//
// u64 magic 0x112 | u64 reserved | u64 n | n NDArray records | u64 n_names | names.
// Every record layout MXNet ever wrote is read: legacy (pre-2017-05, u32 dims), V1
// (0xF993FAC8, i64 dims), V2 (0xF993FAC9, storage type) and V3 (0xF993FACA, NumPy shape
// semantics). Names are kept as written, including the `arg:` / `aux:` prefixes; a list
// file without names gets "0", "1", .... "None" arrays are skipped; sparse arrays are
// refused (pretrained weights are dense).
#pragma once

#include <string>

#include "weights/byte_source.h"
#include "weights/tensor_map.h"

namespace cbst::weights {

constexpr uint64_t kMxnetListMagic = 0x112;

TensorMap read_mxnet_params(const ByteSource& src);
TensorMap read_mxnet_params(const std::string& path);

}  // namespace cbst::weights
