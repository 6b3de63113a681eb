// Direct f32 convolution for thin layers (layers/conv2d_direct.h).
//
// Each output is 0 + one chain of fused multiply-adds in im2col's row order,
//   y[co][p] = 0 + fma(w[co][K−1], x_{K−1}(p), … fma(w[co][0], x_0(p), 0))
// with k = (ci·kh + i)·kw + j, computed straight from a zero-padded copy of the image, eight
// pixels per 256-bit vector (sixteen per 512-bit one, on CPUs with AVX-512F): no col matrix.
// That is what im2col + GEMM computes with a GEMM that sums
// each element of C as one chain in k order when K fits its K block, as OpenBLAS's AVX-512
// SGEMM kernel does (K ≤ 320 here; checked against the chain for M 3–64, N 1,000–9,216), so
// there the two paths have the same bits. conv2d_cpu.cpp also runs backward-data through it.
#include "layers/conv2d_direct.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "engine/blas_core.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CBST_DIRECT_X86 1
#include <immintrin.h>
#else
#define CBST_DIRECT_X86 0
#endif

namespace cbst::conv_detail {

namespace {

#if CBST_DIRECT_X86

// Kernels over one output row `oh` from column ow: 4 filters × 24 pixels, 4 filters × 8 pixels
// and 1 filter × 8 pixels. off[k]: the offset of tap k in the padded image, k in im2col's row
// order. The accumulators are named variables: as an array, GCC 12 kept them in memory.
// A stored result is 0 + chain, as the GEMM adds its chain to a zeroed C (a chain that
// underflowed to −0 becomes +0 there too).
#define CBST_FMA(acc, w, x) acc = _mm256_fmadd_ps(w, x, acc)

__attribute__((target("avx2,fma"))) inline void store(float* p, __m256 v) {
  _mm256_storeu_ps(p, _mm256_add_ps(_mm256_setzero_ps(), v));
}

__attribute__((target("avx2,fma"))) void block_4x24(float* y, const float* xp, const float* w, const int64_t* off,
                                                    const DirectGeometry& q, int64_t co0, int64_t oh, int64_t ow) {
  const int64_t kt = q.ci * q.kh * q.kw;
  const float* base = xp + oh * q.wp + ow;
  const float* w0 = w + co0 * kt;
  const float *w1 = w0 + kt, *w2 = w1 + kt, *w3 = w2 + kt;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
         a9 = a0, a10 = a0, a11 = a0;
  for (int64_t k = 0; k < kt; ++k) {
    const float* src = base + off[k];
    const __m256 x0 = _mm256_loadu_ps(src), x1 = _mm256_loadu_ps(src + 8), x2 = _mm256_loadu_ps(src + 16);
    __m256 v = _mm256_broadcast_ss(w0 + k);
    CBST_FMA(a0, v, x0), CBST_FMA(a1, v, x1), CBST_FMA(a2, v, x2);
    v = _mm256_broadcast_ss(w1 + k);
    CBST_FMA(a3, v, x0), CBST_FMA(a4, v, x1), CBST_FMA(a5, v, x2);
    v = _mm256_broadcast_ss(w2 + k);
    CBST_FMA(a6, v, x0), CBST_FMA(a7, v, x1), CBST_FMA(a8, v, x2);
    v = _mm256_broadcast_ss(w3 + k);
    CBST_FMA(a9, v, x0), CBST_FMA(a10, v, x1), CBST_FMA(a11, v, x2);
  }
  float* out = y + (co0 * q.ho + oh) * q.wo + ow;
  const int64_t plane = q.ho * q.wo;
  store(out, a0), store(out + 8, a1), store(out + 16, a2);
  store(out + plane, a3), store(out + plane + 8, a4), store(out + plane + 16, a5);
  store(out + 2 * plane, a6), store(out + 2 * plane + 8, a7), store(out + 2 * plane + 16, a8);
  store(out + 3 * plane, a9), store(out + 3 * plane + 8, a10), store(out + 3 * plane + 16, a11);
}

__attribute__((target("avx512f,avx2,fma"))) inline void store(float* p, __m512 v) {
  _mm512_storeu_ps(p, _mm512_add_ps(_mm512_setzero_ps(), v));
}

// block_4x24 at twice the width: 4 filters × 48 pixels in 512-bit vectors. Each output is the
// same chain, so the bits are the same as block_4x24's.
__attribute__((target("avx512f,avx2,fma"))) void block_4x48(float* y, const float* xp, const float* w,
                                                            const int64_t* off, const DirectGeometry& q,
                                                            int64_t co0, int64_t oh, int64_t ow) {
  const int64_t kt = q.ci * q.kh * q.kw;
  const float* base = xp + oh * q.wp + ow;
  const float* w0 = w + co0 * kt;
  const float *w1 = w0 + kt, *w2 = w1 + kt, *w3 = w2 + kt;
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
         a9 = a0, a10 = a0, a11 = a0;
  for (int64_t k = 0; k < kt; ++k) {
    const float* src = base + off[k];
    const __m512 x0 = _mm512_loadu_ps(src), x1 = _mm512_loadu_ps(src + 16), x2 = _mm512_loadu_ps(src + 32);
    __m512 v = _mm512_set1_ps(w0[k]);
    a0 = _mm512_fmadd_ps(v, x0, a0), a1 = _mm512_fmadd_ps(v, x1, a1), a2 = _mm512_fmadd_ps(v, x2, a2);
    v = _mm512_set1_ps(w1[k]);
    a3 = _mm512_fmadd_ps(v, x0, a3), a4 = _mm512_fmadd_ps(v, x1, a4), a5 = _mm512_fmadd_ps(v, x2, a5);
    v = _mm512_set1_ps(w2[k]);
    a6 = _mm512_fmadd_ps(v, x0, a6), a7 = _mm512_fmadd_ps(v, x1, a7), a8 = _mm512_fmadd_ps(v, x2, a8);
    v = _mm512_set1_ps(w3[k]);
    a9 = _mm512_fmadd_ps(v, x0, a9), a10 = _mm512_fmadd_ps(v, x1, a10), a11 = _mm512_fmadd_ps(v, x2, a11);
  }
  float* out = y + (co0 * q.ho + oh) * q.wo + ow;
  const int64_t plane = q.ho * q.wo;
  store(out, a0), store(out + 16, a1), store(out + 32, a2);
  store(out + plane, a3), store(out + plane + 16, a4), store(out + plane + 32, a5);
  store(out + 2 * plane, a6), store(out + 2 * plane + 16, a7), store(out + 2 * plane + 32, a8);
  store(out + 3 * plane, a9), store(out + 3 * plane + 16, a10), store(out + 3 * plane + 32, a11);
}

__attribute__((target("avx2,fma"))) void block_4x8(float* y, const float* xp, const float* w, const int64_t* off,
                                                   const DirectGeometry& q, int64_t co0, int64_t oh, int64_t ow) {
  const int64_t kt = q.ci * q.kh * q.kw;
  const float* base = xp + oh * q.wp + ow;
  const float* w0 = w + co0 * kt;
  const float *w1 = w0 + kt, *w2 = w1 + kt, *w3 = w2 + kt;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t k = 0; k < kt; ++k) {
    const __m256 x0 = _mm256_loadu_ps(base + off[k]);
    CBST_FMA(a0, _mm256_broadcast_ss(w0 + k), x0);
    CBST_FMA(a1, _mm256_broadcast_ss(w1 + k), x0);
    CBST_FMA(a2, _mm256_broadcast_ss(w2 + k), x0);
    CBST_FMA(a3, _mm256_broadcast_ss(w3 + k), x0);
  }
  float* out = y + (co0 * q.ho + oh) * q.wo + ow;
  const int64_t plane = q.ho * q.wo;
  store(out, a0), store(out + plane, a1), store(out + 2 * plane, a2), store(out + 3 * plane, a3);
}

__attribute__((target("avx2,fma"))) void block_1x8(float* y, const float* xp, const float* w, const int64_t* off,
                                                   const DirectGeometry& q, int64_t co, int64_t oh, int64_t ow) {
  const int64_t kt = q.ci * q.kh * q.kw;
  const float* base = xp + oh * q.wp + ow;
  const float* w0 = w + co * kt;
  __m256 a0 = _mm256_setzero_ps();
  for (int64_t k = 0; k < kt; ++k) CBST_FMA(a0, _mm256_broadcast_ss(w0 + k), _mm256_loadu_ps(base + off[k]));
  store(y + (co * q.ho + oh) * q.wo + ow, a0);
}

#undef CBST_FMA

// One output pixel of one filter: the same chain in scalar fused multiply-adds.
__attribute__((target("avx2,fma"))) inline void pixel(float* y, const float* xp, const float* w,
                                                      const int64_t* off, const DirectGeometry& q, int64_t co,
                                                      int64_t oh, int64_t ow) {
  const int64_t k_total = q.ci * q.kh * q.kw;
  const float* base = xp + oh * q.wp + ow;
  float acc = 0.0f;
  for (int64_t k = 0; k < k_total; ++k) acc = __builtin_fmaf(w[co * k_total + k], base[off[k]], acc);
  y[(co * q.ho + oh) * q.wo + ow] = 0.0f + acc;
}

// Output rows [oh0, oh1) of filters [co0, co0 + 4), or of one filter (four == false); `wide`:
// 48-pixel blocks in 512-bit vectors first (the CPU has AVX-512F).
__attribute__((target("avx2,fma"))) void filter_rows(float* y, const float* xp, const float* w, const int64_t* off,
                                                     const DirectGeometry& q, int64_t co0, bool four, bool wide,
                                                     int64_t oh0, int64_t oh1) {
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    int64_t ow = 0;
    if (four) {
      if (wide)
        for (; ow + 48 <= q.wo; ow += 48) block_4x48(y, xp, w, off, q, co0, oh, ow);
      for (; ow + 24 <= q.wo; ow += 24) block_4x24(y, xp, w, off, q, co0, oh, ow);
      for (; ow + 8 <= q.wo; ow += 8) block_4x8(y, xp, w, off, q, co0, oh, ow);
    } else {
      for (; ow + 8 <= q.wo; ow += 8) block_1x8(y, xp, w, off, q, co0, oh, ow);
    }
    for (; ow < q.wo; ++ow)
      for (int64_t b = 0; b < (four ? 4 : 1); ++b) pixel(y, xp, w, off, q, co0 + b, oh, ow);
  }
}

__attribute__((target("avx2,fma"))) void rows_avx2(float* y, const float* xp, const float* w,
                                                   const DirectGeometry& q, bool wide, int64_t oh0, int64_t oh1) {
  std::vector<int64_t> offsets(size_t(q.ci * q.kh * q.kw));
  size_t k = 0;
  for (int64_t c = 0; c < q.ci; ++c)
    for (int64_t i = 0; i < q.kh; ++i)
      for (int64_t j = 0; j < q.kw; ++j) offsets[k++] = (c * q.hp + i * q.dilation) * q.wp + j * q.dilation;
  const int64_t* off = offsets.data();
  int64_t co = 0;
  for (; co + 4 <= q.co; co += 4) filter_rows(y, xp, w, off, q, co, true, wide, oh0, oh1);
  for (; co < q.co; ++co) filter_rows(y, xp, w, off, q, co, false, wide, oh0, oh1);
}

#endif  // CBST_DIRECT_X86

}  // namespace

bool direct_forward_available() {
#if CBST_DIRECT_X86
  static const bool cpu = kern::cpu_simd().avx2_fma;
  // Off for any value that reads as the number 0 ("0", "off", "false"), except "avx2".
  const char* env = std::getenv("CBST_CPU_CONV_DIRECT");
  return cpu && !(env && std::strcmp(env, "avx2") != 0 && std::strtol(env, nullptr, 10) == 0);
#else
  return false;
#endif
}

bool direct_wide_kernel() {
#if CBST_DIRECT_X86
  static const bool cpu = __builtin_cpu_supports("avx512f");
  const char* env = std::getenv("CBST_CPU_CONV_DIRECT");
  return cpu && !(env && std::strcmp(env, "avx2") == 0);
#else
  return false;
#endif
}

void pad_image(float* xp, const float* x, const DirectGeometry& q) {
  std::fill(xp, xp + q.ci * q.hp * q.wp, 0.0f);
  for (int64_t c = 0; c < q.ci; ++c)
    for (int64_t r = 0; r < q.h; ++r)
      std::copy(x + (c * q.h + r) * q.w, x + (c * q.h + r + 1) * q.w, xp + (c * q.hp + r + q.pad) * q.wp + q.pad);
}

void direct_forward_rows(float* y, const float* xp, const float* w, const DirectGeometry& q, int64_t oh0,
                         int64_t oh1) {
#if CBST_DIRECT_X86
  rows_avx2(y, xp, w, q, direct_wide_kernel(), oh0, oh1);
#else
  (void)y, (void)xp, (void)w, (void)q, (void)oh0, (void)oh1;
#endif
}

}  // namespace cbst::conv_detail
