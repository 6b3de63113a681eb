// Element types and devices.
#pragma once

#include <cstdint>
#include <string>

#include "engine/bf16.h"

namespace cbst {

// f32: training and inference. f64: CPU gradient checks (CUDA kernels accept it too).
// u8: labels and masks (comparisons return u8). i32/i64: labels and indices.
// bf16: storage only (engine/bf16.h) — the operands of bf16 mixed-precision convolutions and
// GEMMs and the casts to and from them; no other op takes it.
enum class DType : uint8_t { f32, f64, u8, i32, i64, bf16 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "f32", "f64", "u8", "i32", "i64", "bf16"
DType dtype_from_name(const std::string& name);
// What to do with a dtype an op refused: for bf16, that only convolutions, matmul and casts
// take it; empty for the others.
const char* dtype_hint(DType t);
// The dtypes arithmetic runs in (bf16 is a storage type and is not among them).
inline bool is_floating(DType t) { return t == DType::f32 || t == DType::f64; }

template <class T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::f32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::f64; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::u8; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::i32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::i64; };
template <> struct DTypeOf<bf16> { static constexpr DType value = DType::bf16; };
template <class T> inline constexpr DType dtype_of = DTypeOf<T>::value;

enum class DeviceType : uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  static Device cpu() { return {DeviceType::cpu, 0}; }
  static Device cuda(int i = 0) { return {DeviceType::cuda, i}; }
  // "cpu", "cuda", "cuda:1"
  static Device parse(const std::string& s);

  bool is_cpu() const { return type == DeviceType::cpu; }
  bool is_cuda() const { return type == DeviceType::cuda; }
  std::string str() const;
  bool operator==(const Device&) const = default;
};

}  // namespace cbst
