// CPU twin of the labelling kernels: the executable specification. Plain loops over label
// pixels (OpenMP over rows), the pools materialised as order keys and the rank found with
// std::nth_element. Per-pixel arithmetic is shared with the CUDA kernels (labeling_math.h).
#include <algorithm>
#include <functional>
#include <vector>

#include "selftrain/labeling_kernels.h"

namespace cbst::labeling {

namespace {

// The taps of every column and row of the label grid, computed once (the same function as
// the per-pixel device code, so the same values).
struct GridTaps {
  std::vector<Tap> py, px, qy, qx;

  explicit GridTaps(const ScoreSource& s) : py(s.height), px(s.width), qy(s.height), qx(s.width) {
    for (int64_t y = 0; y < s.height; ++y) {
      const PixelTaps t = pixel_taps(s, y, 0);
      py[y] = t.py;
      qy[y] = t.qy;
    }
    for (int64_t x = 0; x < s.width; ++x) {
      const PixelTaps t = pixel_taps(s, 0, x);
      px[x] = t.px;
      qx[x] = t.qx;
    }
  }
  PixelTaps at(int64_t y, int64_t x) const { return {py[y], px[x], qy[y], qx[x]}; }
};

}  // namespace

Pools collect_pools_cpu(const ScoreSource& src, int64_t images, const PoolParams& params) {
  const int64_t classes = src.classes;
  const int64_t width = src.width;
  const int64_t pixels = int64_t(src.height) * width;
  // Pixel-index sampling visits flat indices 0, K, 2K, … < H·W; the authors' visits every
  // pixel and keeps every K-th of each class.
  const int64_t stride = params.authors_sampling ? 1 : params.pool_stride;
  const int64_t per_image = (pixels + stride - 1) / stride;
  const GridTaps taps(src);

  Pools out{.keys = std::vector<std::vector<uint32_t>>(params.global_pool ? 1 : classes),
            .counts = std::vector<int64_t>(classes, 0)};
  auto& pools = out.keys;
  auto& counts = out.counts;
  std::vector<uint8_t> label(per_image);
  std::vector<uint32_t> key(per_image);
  std::vector<int64_t> seen(classes);  // the authors' sampling: pixels of each class so far
  for (int64_t i = 0; i < images; ++i) {
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < per_image; ++m) {
      const int64_t k = m * stride;
      const Best b = best_class(src, i, taps.at(k / width, k % width), nullptr);
      label[m] = uint8_t(b.label);
      key[m] = order_key(b.value);
    }
    std::fill(seen.begin(), seen.end(), 0);
    for (int64_t m = 0; m < per_image; ++m) {
      if (params.authors_sampling && seen[label[m]]++ % params.pool_stride != 0) continue;
      pools[params.global_pool ? 0 : label[m]].push_back(key[m]);
      ++counts[label[m]];
    }
  }
  return out;
}

void class_thresholds_cpu(float* thresholds, int64_t* pool_sizes, const ScoreSource& src,
                          int64_t images, const PoolParams& params) {
  const int64_t classes = src.classes;
  Pools collected = collect_pools_cpu(src, images, params);
  auto& pools = collected.keys;
  const auto& counts = collected.counts;
  // The authors' zeros (the rank selection below does not depend on where they sit).
  if (params.authors_sampling)
    for (auto& pool : pools)
      pool.insert(pool.end(), size_t(authors_zero_entries(params.global_pool, classes)), order_key(0.0f));

  // threshold = pool[t−1] of the pool sorted in descending order, t = ⌊n·p⌋.
  std::vector<float> value(pools.size(), 1.0f);
  for (size_t j = 0; j < pools.size(); ++j) {
    auto& pool = pools[j];
    const int64_t t = rank_count(int64_t(pool.size()), params.portion);
    if (t == 0) continue;
    std::nth_element(pool.begin(), pool.begin() + (t - 1), pool.end(), std::greater<uint32_t>());
    value[j] = usable_threshold(key_value(pool[t - 1]));
  }
  for (int64_t c = 0; c < classes; ++c) {
    thresholds[c] = value[params.global_pool ? 0 : c];
    pool_sizes[c] = counts[c];
  }
}

void pseudo_labels_cpu(uint8_t* labels, float* confidence, const ScoreSource& src,
                       int64_t images, const float* thresholds) {
  const int64_t height = src.height, width = src.width;
  const GridTaps taps(src);
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < images * height; ++row) {
    const int64_t i = row / height, y = row % height;
    for (int64_t x = 0; x < width; ++x) {
      // r_n(c) = s_n(c)/threshold(c); kept iff max_c r ≥ 1 (a pixel at its threshold stays).
      const Best b = best_class(src, i, taps.at(y, x), thresholds);
      labels[row * width + x] = b.value >= 1.0f ? uint8_t(b.label) : kIgnoreLabel;
      if (confidence != nullptr) confidence[row * width + x] = b.value;
    }
  }
}

void selection_scores_cpu(float* scores, const ScoreSource& src, int64_t images) {
  const int64_t height = src.height, width = src.width, classes = src.classes;
  const GridTaps taps(src);
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < images * height; ++row) {
    const int64_t i = row / height, y = row % height;
    for (int64_t x = 0; x < width; ++x) {
      const PixelTaps t = taps.at(y, x);
      for (int32_t c = 0; c < src.classes; ++c)
        scores[((i * classes + c) * height + y) * width + x] = score(src, i, c, t);
    }
  }
}

}  // namespace cbst::labeling
