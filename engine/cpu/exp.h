// exp of many floats at once, with the bits of std::exp(float): a profile of small-fcn's
// training step put a tenth of it in glibc's scalar expf, called once per logit by the
// softmax cross-entropy (forward and backward) and the softmax.
#pragma once

#include <cmath>
#include <cstdint>

namespace cbst::kern::cpu {

// y[i] = std::exp(x[i]) for 0 <= i < n, bit for bit; x and y may be the same array.
//
// On x86-64 with AVX2 and FMA, under glibc, eight at a time: glibc's expf on such CPUs is a
// 32-entry table of 2^(i/32) and a cubic in double precision with fused multiply-adds, and the
// same arithmetic in vector registers gives the same bits. Before its first use the vector
// path checks itself against std::exp on 2^16 arguments across the range, and is off for the
// process if one differs (another C library or version); arguments outside [-103, 88] and
// NaNs go to std::exp one by one. Elsewhere: std::exp in a loop.
void exp_f32(const float* x, float* y, int64_t n);

// exp_f32 for floats, std::exp one by one for doubles: for kernels templated on the type.
inline void exp_n(const float* x, float* y, int64_t n) { exp_f32(x, y, n); }
inline void exp_n(const double* x, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

// Whether exp_f32 takes the vector path in this process (for the tests and the benchmarks).
bool exp_f32_vectorised();

}  // namespace cbst::kern::cpu
