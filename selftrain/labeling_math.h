// Per-pixel arithmetic shared by the CPU twin and the CUDA kernels of pseudo-labelling.
//
// Internal (no CUDA headers; compiles as host code and, under nvcc, as host+device code).
// The CPU and GPU paths must produce *bit-identical* scores so that thresholds and labels
// agree exactly, so every multiply and add here is rounded on its own: the device side uses
// __fmul_rn/__fadd_rn (never contracted into FMA) and the host side is compiled with
// -ffp-contract=off (selftrain/CMakeLists.txt).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define CBST_HD __host__ __device__ __forceinline__
#else
#define CBST_HD inline
#endif

namespace cbst::labeling {

CBST_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
CBST_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
CBST_HD float sub_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
CBST_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// One axis of a bilinear resize with align_corners=false, exactly as
// torch.nn.functional.interpolate computes it in f32:
//   scale = in/out,  src = max(scale·(dst + ½) − ½, 0),  i0 = ⌊src⌋,  i1 = min(i0 + 1, in − 1),
//   w1 = src − i0,  w0 = 1 − w1.
// `scale` is computed once on the host (f32 division, identical on both sides).
struct Axis {
  float scale = 1.0f;
  int32_t in_size = 1;
};
inline Axis make_axis(int64_t in_size, int64_t out_size) {
  return {float(in_size) / float(out_size), int32_t(in_size)};
}

struct Tap {
  int32_t i0, i1;
  float w0, w1;
};

CBST_HD Tap linear_tap(const Axis& a, int64_t dst) {
  float src = sub_rn(mul_rn(a.scale, add_rn(float(dst), 0.5f)), 0.5f);
  if (src < 0.0f) src = 0.0f;
  Tap t;
  t.i0 = int32_t(src);  // ⌊src⌋ since src ≥ 0
  t.i1 = t.i0 < a.in_size - 1 ? t.i0 + 1 : t.i0;
  t.w1 = sub_rn(src, float(t.i0));
  t.w0 = sub_rn(1.0f, t.w1);
  return t;
}

// h0·(w0·a + w1·b) + h1·(w0·c + w1·d): torch's order of operations.
CBST_HD float bilinear(const float* plane, int64_t width, const Tap& ty, const Tap& tx) {
  const float* r0 = plane + int64_t(ty.i0) * width;
  const float* r1 = plane + int64_t(ty.i1) * width;
  const float top = add_rn(mul_rn(tx.w0, r0[tx.i0]), mul_rn(tx.w1, r0[tx.i1]));
  const float bot = add_rn(mul_rn(tx.w0, r1[tx.i0]), mul_rn(tx.w1, r1[tx.i1]));
  return add_rn(mul_rn(ty.w0, top), mul_rn(ty.w1, bot));
}

// Where the scores s_n(c) = q_n(c)·p_n(c) of one label grid come from.
struct ScoreSource {
  const float* probs = nullptr;  // (N, C, h, w)
  const float* prior = nullptr;  // (C, Hp, Wp) or null (q = 1)
  int32_t classes = 0;
  int32_t h = 0, w = 0;    // network resolution
  int32_t hp = 0, wp = 0;  // prior resolution
  int32_t height = 0, width = 0;  // label resolution H, W
  Axis py, px;  // probs → labels
  Axis qy, qx;  // prior → labels
};

// The taps of label pixel (y, x) into the probability and prior grids.
struct PixelTaps {
  Tap py, px, qy, qx;
};
CBST_HD PixelTaps pixel_taps(const ScoreSource& s, int64_t y, int64_t x) {
  PixelTaps t;
  t.py = linear_tap(s.py, y);
  t.px = linear_tap(s.px, x);
  if (s.prior != nullptr) {
    t.qy = linear_tap(s.qy, y);
    t.qx = linear_tap(s.qx, x);
  } else {
    t.qy = t.qx = Tap{0, 0, 1.0f, 0.0f};
  }
  return t;
}

// s_n(c) for class c of image `image` at the pixel whose taps are `t`.
CBST_HD float score(const ScoreSource& s, int64_t image, int32_t c, const PixelTaps& t) {
  const int64_t plane = int64_t(s.h) * s.w;
  const float p = bilinear(s.probs + (image * s.classes + c) * plane, s.w, t.py, t.px);
  if (s.prior == nullptr) return p;
  const float q = bilinear(s.prior + int64_t(c) * s.hp * s.wp, s.wp, t.qy, t.qx);
  return mul_rn(q, p);
}

// argmax_c (lowest class on ties) and max of s_n(c) / divisor(c); divisor null means 1.
struct Best {
  int32_t label;
  float value;
};
CBST_HD Best best_class(const ScoreSource& s, int64_t image, const PixelTaps& t,
                        const float* divisor) {
  Best b{0, 0.0f};
  for (int32_t c = 0; c < s.classes; ++c) {
    float v = score(s, image, c, t);
    if (divisor != nullptr) v = div_rn(v, divisor[c]);
    if (c == 0 || v > b.value) b = {c, v};
  }
  return b;
}

// A total order on floats as unsigned integers: for non-NaN a < b ⇒ key(a) < key(b)
// (−0 sorts just below +0). Non-negative floats keep their bit pattern's order with the
// sign bit flipped on; negative ones are complemented. Thresholds are selected on this key
// by both the CPU sort and the GPU histograms, so both agree on every input.
CBST_HD uint32_t order_key(float v) {
  uint32_t bits;
#if defined(__CUDA_ARCH__)
  bits = __float_as_uint(v);
#else
  std::memcpy(&bits, &v, sizeof bits);
#endif
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}
CBST_HD float key_value(uint32_t key) {
  const uint32_t bits = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
#endif
}

// t = ⌊n·p⌋ in f64, as the authors' Python does.
CBST_HD int64_t rank_count(int64_t pool_size, double portion) {
  return int64_t(double(pool_size) * portion);  // n·p ≥ 0, so truncation is ⌊·⌋
}

// A threshold that is not positive (a pool whose t-th largest confidence is 0, possible
// only through a zero prior) would make s/threshold meaningless; the authors' code turns
// a zero threshold into 1.0 (`cls_thresh[cls_thresh == 0] = 1`), and so do we.
CBST_HD float usable_threshold(float t) { return t > 0.0f ? t : 1.0f; }

}  // namespace cbst::labeling
