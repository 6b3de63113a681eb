// safetensors: the native checkpoint format (DESIGN §5), read and written.
//
// Layout: u64 N (LE) | N bytes of JSON header | data buffer. The reader validates as the
// reference implementation (huggingface/safetensors `Metadata::validate`) does: header
// length within bounds and inside the file, UTF-8 JSON object, known dtype, shape x dtype
// size == byte span, spans tiling the data buffer exactly (no holes, no overlap, no
// trailing bytes), no duplicate names, `__metadata__` string -> string.
// F32/F64/U8/I32/I64 load as themselves; the other integer and float types are widened
// (weights/raw_dtype.h); fp8/fp4/complex are refused by name.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "weights/byte_source.h"
#include "weights/tensor_map.h"

namespace cbst::weights {

// Largest accepted header, as in the reference implementation (MAX_HEADER_SIZE).
constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;

TensorMap read_safetensors(const ByteSource& src);
TensorMap read_safetensors(const std::string& path);
// The `__metadata__` of a file alone: its header read and checked, no tensor read (a
// checkpoint's model name before the model is built).
std::map<std::string, std::string> read_safetensors_metadata(const ByteSource& src);
std::map<std::string, std::string> read_safetensors_metadata(const std::string& path);

// Writes atomically: a temporary file in the destination folder, fsync, rename, fsync of the
// folder. A crash leaves either the old file or the new one, never a half-written file.
// Tensors may live on any device and have any layout; they are written contiguous.
void write_safetensors(const std::string& path, const TensorMap& tensors);
// The same bytes, in memory.
std::vector<uint8_t> encode_safetensors(const TensorMap& tensors);

}  // namespace cbst::weights
