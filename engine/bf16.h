// bf16 (bfloat16): the upper 16 bits of an IEEE-754 binary32 — sign, the same 8 exponent
// bits, 7 stored mantissa bits (8 bits of precision). One header for host and device code,
// so the CPU and CUDA casts are the same function.
//
// float → bf16 rounds to nearest, ties to even (unit roundoff 2^-8): the 16 dropped bits
// are added with a bias of 0x7FFF plus the kept lowest bit, which carries into the kept
// half exactly when RNE rounds up; a carry out of the mantissa increments the exponent, so
// values at or above max-finite + half an ulp round to ±Inf, as RNE does. NaN is kept NaN
// (the quiet bit is set so that the truncated payload can never read as Inf) with its sign.
// Subnormals round the same way (bf16 has f32's subnormal range, less precision).
// bf16 → float is exact (a 16-bit shift).
//
// Because bf16 has f32's exponent range, bf16 training needs no loss scaling (unlike f16).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "engine/philox.h"  // CBST_HOST_DEVICE

namespace cbst {

CBST_HOST_DEVICE uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

CBST_HOST_DEVICE float float_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

CBST_HOST_DEVICE uint16_t bf16_bits_from_float(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x0040u);  // NaN: quiet
  return uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

CBST_HOST_DEVICE float float_from_bf16_bits(uint16_t b) { return float_from_bits(uint32_t(b) << 16); }

// A 2-byte POD holding bf16 bits. Conversions are explicit: arithmetic on bf16 does not
// exist in the engine; values are widened to f32 (exactly) where they are used.
struct bf16 {
  uint16_t bits;

  bf16() = default;
  CBST_HOST_DEVICE explicit bf16(float f) : bits(bf16_bits_from_float(f)) {}
  CBST_HOST_DEVICE static bf16 from_bits(uint16_t b) {
    bf16 v;
    v.bits = b;
    return v;
  }
  CBST_HOST_DEVICE explicit operator float() const { return float_from_bf16_bits(bits); }
};

static_assert(sizeof(bf16) == 2, "bf16 must be 2 bytes");

// Element conversion for the copy kernels: bf16 goes through f32 both ways (so f64 → bf16
// rounds twice; the engine only ever casts f32 to bf16), everything else is To(x).
template <class To, class From>
CBST_HOST_DEVICE To convert_element(From x) {
  if constexpr (std::is_same_v<To, From>) return x;
  else if constexpr (std::is_same_v<From, bf16>) return To(float(x));
  else if constexpr (std::is_same_v<To, bf16>) return bf16(float(x));
  else return To(x);
}

}  // namespace cbst
