// Element types as they appear in external files, and their decoding into engine tensors.
//
// Files carry more element types than the engine has (DESIGN §2: f32, f64, u8, i32, i64).
// Each file type is widened losslessly where possible: f16/bf16 -> f32, bool -> u8,
// i8/i16/u16 -> i32, u32 -> i64; u64 -> i64 only when every value fits. Anything else
// (fp8, complex, quantized) is refused by name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/tensor.h"

namespace cbst::weights {

enum class RawDType : uint8_t { boolean, u8, i8, i16, u16, i32, u32, i64, u64, f16, bf16, f32, f64 };

size_t raw_dtype_size(RawDType t);
// safetensors spelling: "BOOL", "U8", ..., "F16", "BF16", "F32", "F64".
const char* raw_dtype_name(RawDType t);
std::optional<RawDType> raw_dtype_from_safetensors(std::string_view name);
RawDType raw_dtype_of(DType t);
DType engine_dtype_of(RawDType t);

float half_to_float(uint16_t h);
// bf16 → f32: float_from_bf16_bits (engine/bf16.h).

// A contiguous engine tensor of `shape` from `numel(shape)` packed elements at `src`
// (little-endian unless `big_endian`).
Tensor decode_tensor(const uint8_t* src, RawDType type, const Shape& shape, bool big_endian = false);

// A tensor that views `storage` (storage_numel elements of `type`) at element `offset`
// with `sizes` and `strides` (PyTorch semantics). Bounds are checked before any access;
// `what` names the tensor in errors.
Tensor decode_strided(const uint8_t* storage, uint64_t storage_numel, RawDType type,
                      int64_t offset, const Shape& sizes, const Shape& strides,
                      bool big_endian, std::string_view what);

// Π shape with overflow and sign checks; `what` names the tensor in errors.
uint64_t checked_numel(const Shape& shape, std::string_view what);

}  // namespace cbst::weights
