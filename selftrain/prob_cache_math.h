// binary16 <-> binary32 bit conversions shared by the CPU and CUDA paths of prob_cache.
#pragma once

#include <cstdint>
#include <cstring>

#include "engine/bf16.h"  // CBST_HOST_DEVICE, float_bits, float_from_bits

namespace cbst {

CBST_HOST_DEVICE uint16_t f32_to_f16(float f) {
  const uint32_t x = float_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return uint16_t(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));  // inf/NaN
  if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds above 65504: inf
  if (abs < 0x38800000u) {
    // Subnormal half (or zero): value = m · 2⁻²⁴; round to nearest even by adding in float.
    const float magnitude = float_from_bits(abs) + 0.5f;
    // In [0.5, 0.5 + 2⁻¹⁴) floats have spacing 2⁻²⁴, so the addition rounds |f| to a multiple
    // of 2⁻²⁴ (nearest even), and the low bits are the subnormal mantissa.
    return uint16_t(sign | (float_bits(magnitude) - 0x3f000000u));
  }
  // Normal: rebias the exponent (127 → 15) and round the 13 dropped mantissa bits to even.
  const uint32_t mantissa_odd = (abs >> 13) & 1u;
  const uint32_t rounded = abs + 0x0fffu + mantissa_odd;
  return uint16_t(sign | ((rounded - 0x38000000u) >> 13));
}

CBST_HOST_DEVICE float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {
    const float v = float(mant) * (1.0f / 16777216.0f);  // m · 2⁻²⁴, exact
    return float_from_bits(float_bits(v) | sign);
  }
  if (exp == 31) return float_from_bits(sign | 0x7f800000u | (mant << 13));
  return float_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
}

}  // namespace cbst
