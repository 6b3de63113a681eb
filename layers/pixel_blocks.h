// Blocks of neighbouring pixels for the CPU kernels that reduce over classes (softmax,
// softmax cross-entropy) in NCHW tensors: a class's values for one pixel are `inner` apart,
// so a pixel-at-a-time loop gathers with that stride. Walking a block of kPixelBlock pixels
// class by class reads contiguous runs instead, and the per-class loops vectorise, while each
// pixel's arithmetic stays the per-pixel recipe (the same bits).
#pragma once

#include <algorithm>
#include <cstdint>

#include "engine/cpu/exp.h"
#include "layers/parallel_for.h"

namespace cbst::layer_kernels {

// Pixels per block (two cache lines of floats per class row).
constexpr int64_t kPixelBlock = 32;

// f(image, q0, len) for the blocks [q0, q0 + len) of kPixelBlock neighbouring pixels of each
// of the n images (inner pixels each), over the OpenMP threads.
template <class F>
void for_each_pixel_block(int64_t n, int64_t inner, F f) {
  const int64_t blocks_per_image = (inner + kPixelBlock - 1) / kPixelBlock;
  parallel_for(n * blocks_per_image, [&](int64_t blk) {
    const int64_t q0 = blk % blocks_per_image * kPixelBlock;
    f(blk / blocks_per_image, q0, std::min(kPixelBlock, inner - q0));
  });
}

// m[q] = std::max(m[q], x[q]) for q < len, written so that GCC 12 vectorises it.
template <class T>
void running_max(T* __restrict m, const T* __restrict x, int64_t len) {
  for (int64_t q = 0; q < len; ++q) m[q] = m[q] < x[q] ? x[q] : m[q];
}

// The first two steps of a softmax over classes for a block of len pixels whose class-c values
// start at xs + c·inner: m = the maximum over classes, and total = Σ_c exp(x − m) in class
// order (e: scratch of len values), each pixel's bits those of the per-pixel recipe.
template <class T>
void max_and_exp_sum(T* m, T* total, T* e, const T* xs, int64_t classes, int64_t inner, int64_t len) {
  std::copy(xs, xs + len, m);
  for (int64_t c = 1; c < classes; ++c) running_max(m, xs + c * inner, len);
  std::fill(total, total + len, T(0));
  for (int64_t c = 0; c < classes; ++c) {
    for (int64_t q = 0; q < len; ++q) e[q] = xs[c * inner + q] - m[q];
    kern::cpu::exp_n(e, e, len);
    for (int64_t q = 0; q < len; ++q) total[q] += e[q];
  }
}

}  // namespace cbst::layer_kernels
