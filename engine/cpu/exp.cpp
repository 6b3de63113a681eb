// Vector exp with the bits of std::exp(float); see exp.h.
//
// The arithmetic, per argument x (in double): k/32 + r/32 = x·32/ln 2 with k an integer and
// |r| <= 1/2, found by adding and subtracting 1.5·2^52 (which rounds to nearest); then
// exp(x) = 2^(k/32) · (1 + c2·r + c1·r² + c0·r³), where 2^(k/32) is a table entry for k mod 32
// with k div 32 added to its exponent bits. r and the cubic use fused multiply-adds, as
// glibc's FMA build does; without them two arguments in [-103, 88] round differently
// (checked over every float in that range).
#include "engine/cpu/exp.h"

#include <cmath>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && defined(__GLIBC__) && (defined(__GNUC__) || defined(__clang__))
#define CBST_EXP_X86 1
#include <immintrin.h>
#else
#define CBST_EXP_X86 0
#endif

namespace cbst::kern::cpu {

namespace {

void exp_scalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

#if CBST_EXP_X86

// 32/ln 2, the rounding shift, and the cubic's coefficients (for r scaled by 32).
constexpr double kInvLn2N = 0x1.71547652b82fep+0 * 32;
constexpr double kShift = 0x1.8p+52;
constexpr double kC0 = 0x1.c6af84b912394p-5 / (32.0 * 32.0 * 32.0);
constexpr double kC1 = 0x1.ebfce50fac4f3p-3 / (32.0 * 32.0);
constexpr double kC2 = 0x1.62e42ff0c52d6p-1 / 32.0;
// The vector path's domain: every float in it was checked against glibc 2.36's expf.
constexpr float kLow = -103.0f, kHigh = 88.0f;

// Entry i: the bits of 2^(i/32) rounded to double, less i << 47, so that adding k << 47 for
// k = 32·q + i gives 2^(i/32)·2^q.
struct Table {
  alignas(64) int64_t entry[32];
  Table() {
    for (int i = 0; i < 32; ++i) {
      const double v = double(std::exp2l(static_cast<long double>(i) / 32.0L));
      int64_t bits;
      std::memcpy(&bits, &v, sizeof bits);
      entry[i] = bits - (int64_t(i) << 47);
    }
  }
};
const Table& table() {
  static const Table t;
  return t;
}

__attribute__((target("avx2,fma"))) inline __m128 exp4(__m128 xf, const int64_t* tab) {
  const __m256d xd = _mm256_cvtps_pd(xf);
  const __m256d inv = _mm256_set1_pd(kInvLn2N), shift = _mm256_set1_pd(kShift);
  const __m256d z = _mm256_mul_pd(inv, xd);
  __m256d kd = _mm256_add_pd(z, shift);
  const __m256i ki = _mm256_castpd_si256(kd);
  kd = _mm256_sub_pd(kd, shift);
  const __m256d r = _mm256_fmsub_pd(inv, xd, kd);
  const __m256i index = _mm256_and_si256(ki, _mm256_set1_epi64x(31));
  __m256i t = _mm256_i64gather_epi64(reinterpret_cast<const long long*>(tab), index, 8);
  t = _mm256_add_epi64(t, _mm256_slli_epi64(ki, 47));
  const __m256d s = _mm256_castsi256_pd(t);
  const __m256d cubic = _mm256_fmadd_pd(_mm256_set1_pd(kC0), r, _mm256_set1_pd(kC1));
  const __m256d r2 = _mm256_mul_pd(r, r);
  __m256d p = _mm256_fmadd_pd(_mm256_set1_pd(kC2), r, _mm256_set1_pd(1.0));
  p = _mm256_fmadd_pd(cubic, r2, p);
  return _mm256_cvtpd_ps(_mm256_mul_pd(p, s));
}

__attribute__((target("avx2,fma"))) void exp_avx2(const float* x, float* y, int64_t n) {
  const int64_t* tab = table().entry;
  const __m256 low = _mm256_set1_ps(kLow), high = _mm256_set1_ps(kHigh);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    // Ordered compares: a NaN fails both.
    const __m256 inside = _mm256_and_ps(_mm256_cmp_ps(v, low, _CMP_GE_OQ), _mm256_cmp_ps(v, high, _CMP_LE_OQ));
    if (_mm256_movemask_ps(inside) != 0xff) {
      exp_scalar(x + i, y + i, 8);
      continue;
    }
    const __m128 lo = exp4(_mm256_castps256_ps128(v), tab);
    const __m128 hi = exp4(_mm256_extractf128_ps(v, 1), tab);
    _mm256_storeu_ps(y + i, _mm256_set_m128(hi, lo));
  }
  exp_scalar(x + i, y + i, n - i);
}

// Arguments for the self-check: evenly spaced over the domain and its edges, and dense near
// 0 where softmax arguments gather.
bool vector_path_agrees() {
  constexpr int kCount = 1 << 16;
  std::vector<float> args(kCount), got(kCount);
  for (int i = 0; i < kCount / 2; ++i) args[i] = kLow + (kHigh - kLow) * float(i) / float(kCount / 2 - 1);
  for (int i = 0; i < kCount / 2; ++i) args[kCount / 2 + i] = -8.0f * float(i) / float(kCount / 2);
  // The two arguments in the domain that round differently when r is not fused.
  args[1] = 0x1.04845ep+5f;
  args[2] = -0x1.f8cbb2p+5f;
  exp_avx2(args.data(), got.data(), kCount);
  for (int i = 0; i < kCount; ++i) {
    const float want = std::exp(args[i]);
    if (std::memcmp(&want, &got[i], sizeof want) != 0) return false;
  }
  return true;
}

bool use_vector_path() {
  static const bool use = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && vector_path_agrees();
  return use;
}

#endif  // CBST_EXP_X86

}  // namespace

bool exp_f32_vectorised() {
#if CBST_EXP_X86
  return use_vector_path();
#else
  return false;
#endif
}

void exp_f32(const float* x, float* y, int64_t n) {
#if CBST_EXP_X86
  if (use_vector_path()) return exp_avx2(x, y, n);
#endif
  exp_scalar(x, y, n);
}

}  // namespace cbst::kern::cpu
