// Shared by the pseudo-labelling tests: random problems and a brute-force reference that
// applies DESIGN §7 literally (materialise every score, std::sort each pool, r = s/threshold).
// Its bilinear resize is written out independently of selftrain/labeling_math.h, in the
// same f32 order of operations as torch.nn.functional.interpolate.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "selftrain/pseudo_labels.h"

namespace cbst::testing {

struct LabelingCase {
  std::string name;
  int64_t images, classes, h, w;
  int64_t height, width;  // label size
  int64_t prior_h = 0, prior_w = 0;  // 0: no prior
  ThresholdPolicy policy = ThresholdPolicy::cbst;
  double portion = 0.2;
  int64_t pool_stride = 1;
  bool coarse = false;  // probabilities on a grid of 1/8: many exact ties
};

// GoogleTest prints a failing case by its name.
inline void PrintTo(const LabelingCase& c, std::ostream* os) { *os << c.name; }

// The table shared by the CPU brute-force tests and the CUDA-vs-CPU tests.
inline std::vector<LabelingCase> labeling_cases() {
  using P = ThresholdPolicy;
  return {
      {"cbst_same_size", 2, 5, 9, 11, 9, 11, 0, 0, P::cbst, 0.3, 1},
      {"st_same_size", 2, 5, 9, 11, 9, 11, 0, 0, P::st, 0.3, 1},
      {"cbst_upsampled", 2, 4, 5, 7, 13, 18, 0, 0, P::cbst, 0.2, 1},
      {"st_upsampled_prior", 2, 4, 5, 7, 13, 18, 3, 4, P::st, 0.5, 1},
      {"cbst_prior_upsampled", 3, 6, 6, 5, 17, 15, 8, 7, P::cbst, 0.35, 1},
      {"cbst_downsampled", 1, 3, 12, 16, 7, 9, 0, 0, P::cbst, 0.25, 1},
      {"cbst_prior_larger_than_labels", 1, 3, 4, 4, 6, 6, 9, 10, P::cbst, 0.4, 1},
      {"cbst_stride_3", 2, 5, 6, 8, 19, 23, 0, 0, P::cbst, 0.2, 3},
      {"st_stride_4_prior", 2, 5, 6, 8, 19, 23, 5, 5, P::st, 0.15, 4},
      {"cbst_stride_7_prior", 2, 4, 6, 8, 16, 21, 4, 4, P::cbst, 0.5, 7},
      {"cbst_ties", 2, 4, 8, 8, 8, 8, 0, 0, P::cbst, 0.3, 1, true},
      {"st_ties", 2, 4, 8, 8, 8, 8, 0, 0, P::st, 0.45, 1, true},
      {"cbst_ties_upsampled_prior", 2, 4, 4, 4, 11, 9, 3, 3, P::cbst, 0.3, 2, true},
      {"cbst_portion_zero", 1, 4, 6, 6, 12, 12, 0, 0, P::cbst, 0.0, 1},
      {"cbst_portion_one", 1, 4, 6, 6, 12, 12, 3, 3, P::cbst, 1.0, 1},
      {"cbst_tiny_pools", 1, 6, 2, 3, 2, 3, 0, 0, P::cbst, 0.3, 1},  // many t = 0 / empty
      {"cbst_many_classes", 1, 40, 5, 6, 10, 11, 0, 0, P::cbst, 0.3, 1},
      {"single_pixel", 1, 3, 1, 1, 1, 1, 0, 0, P::cbst, 1.0, 1},
      {"single_class", 1, 1, 3, 3, 5, 5, 0, 0, P::cbst, 0.5, 1},
  };
}

struct LabelingProblem {
  Tensor probs;  // (N, C, h, w) cpu
  Tensor prior;  // (C, Hp, Wp) cpu or undefined
};

// Softmax of random logits (or values on a grid of 1/8 for `coarse`). Class 0 is made rare
// and, in odd images, the last class never wins, so that some pools are small or empty.
inline LabelingProblem make_problem(const LabelingCase& c, uint32_t seed = 1234) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  std::vector<float> probs(size_t(c.images * c.classes * c.h * c.w));
  const int64_t plane = c.h * c.w;
  for (int64_t i = 0; i < c.images; ++i) {
    for (int64_t k = 0; k < plane; ++k) {
      std::vector<float> v(size_t(c.classes));
      float sum = 0.0f;
      for (int64_t j = 0; j < c.classes; ++j) {
        float logit = 4.0f * uni(rng);
        if (j == 0) logit -= 3.0f;
        if (j == c.classes - 1 && c.classes > 2 && i % 2 == 1) logit = -20.0f;
        v[j] = std::exp(logit);
        sum += v[j];
      }
      for (int64_t j = 0; j < c.classes; ++j) {
        float p = v[j] / sum;
        if (c.coarse) p = std::round(p * 8.0f) / 8.0f;
        probs[size_t((i * c.classes + j) * plane + k)] = p;
      }
    }
  }
  LabelingProblem out;
  out.probs = Tensor::from_vector(probs, {c.images, c.classes, c.h, c.w});
  if (c.prior_h > 0) {
    std::vector<float> prior(size_t(c.classes * c.prior_h * c.prior_w));
    for (auto& q : prior) q = c.coarse ? std::round(uni(rng) * 4.0f) / 4.0f : uni(rng);
    out.prior = Tensor::from_vector(prior, {c.classes, c.prior_h, c.prior_w});
  }
  return out;
}

// ---- brute force -------------------------------------------------------------------

// (h, w) → (H, W), align_corners = false, f32, torch's formula.
inline std::vector<float> reference_resize(const float* src, int64_t h, int64_t w, int64_t H,
                                           int64_t W) {
  auto taps = [](int64_t in, int64_t out, int64_t dst, int64_t& i0, int64_t& i1, float& l0,
                 float& l1) {
    const float scale = float(in) / float(out);
    float s = scale * (float(dst) + 0.5f) - 0.5f;
    if (s < 0.0f) s = 0.0f;
    i0 = int64_t(s);
    i1 = std::min(i0 + 1, in - 1);
    l1 = s - float(i0);
    l0 = 1.0f - l1;
  };
  std::vector<float> out(size_t(H * W));
  for (int64_t y = 0; y < H; ++y) {
    int64_t y0, y1;
    float hy0, hy1;
    taps(h, H, y, y0, y1, hy0, hy1);
    for (int64_t x = 0; x < W; ++x) {
      int64_t x0, x1;
      float wx0, wx1;
      taps(w, W, x, x0, x1, wx0, wx1);
      const float top = wx0 * src[y0 * w + x0] + wx1 * src[y0 * w + x1];
      const float bot = wx0 * src[y1 * w + x0] + wx1 * src[y1 * w + x1];
      out[size_t(y * W + x)] = hy0 * top + hy1 * bot;
    }
  }
  return out;
}

// s_n(c) for every image, class and label pixel: (N, C, H, W).
inline std::vector<float> reference_scores(const LabelingCase& c, const LabelingProblem& p) {
  const std::vector<float> probs = p.probs.to_vector<float>();
  std::vector<float> prior;
  if (p.prior.defined()) prior = p.prior.to_vector<float>();
  std::vector<float> out;
  for (int64_t i = 0; i < c.images; ++i) {
    for (int64_t j = 0; j < c.classes; ++j) {
      std::vector<float> s =
          reference_resize(&probs[size_t((i * c.classes + j) * c.h * c.w)], c.h, c.w, c.height,
                           c.width);
      if (!prior.empty()) {
        const std::vector<float> q =
            reference_resize(&prior[size_t(j * c.prior_h * c.prior_w)], c.prior_h, c.prior_w,
                             c.height, c.width);
        for (size_t k = 0; k < s.size(); ++k) s[k] = q[k] * s[k];
      }
      out.insert(out.end(), s.begin(), s.end());
    }
  }
  return out;
}

struct ReferenceThresholds {
  std::vector<float> thresholds;
  std::vector<int64_t> pool_sizes;
};

// argmax_c (lowest class on ties) and max of the scores of pixel k of image i.
struct ReferenceBest {
  int64_t label;
  float value;
};
inline ReferenceBest reference_best(const LabelingCase& c, const std::vector<float>& scores, int64_t i,
                                    int64_t k) {
  const int64_t pixels = c.height * c.width;
  ReferenceBest b{0, scores[size_t((i * c.classes) * pixels + k)]};
  for (int64_t j = 1; j < c.classes; ++j) {
    const float s = scores[size_t((i * c.classes + j) * pixels + k)];
    if (s > b.value) b = {j, s};
  }
  return b;
}

inline ReferenceThresholds reference_thresholds(const LabelingCase& c,
                                                const std::vector<float>& scores) {
  const int64_t pixels = c.height * c.width;
  const bool global = c.policy == ThresholdPolicy::st;
  std::vector<std::vector<float>> pools(size_t(global ? 1 : c.classes));
  ReferenceThresholds r{std::vector<float>(size_t(c.classes)),
                        std::vector<int64_t>(size_t(c.classes), 0)};
  for (int64_t i = 0; i < c.images; ++i) {
    for (int64_t k = 0; k < pixels; k += c.pool_stride) {
      const ReferenceBest b = reference_best(c, scores, i, k);
      pools[size_t(global ? 0 : b.label)].push_back(b.value);
      ++r.pool_sizes[size_t(b.label)];
    }
  }
  for (int64_t j = 0; j < c.classes; ++j) {
    std::vector<float>& pool = pools[size_t(global ? 0 : j)];
    std::sort(pool.begin(), pool.end(), std::greater<float>());
    const int64_t t = int64_t(std::floor(double(pool.size()) * c.portion));
    float thr = t == 0 ? 1.0f : pool[size_t(t - 1)];
    if (thr <= 0.0f) thr = 1.0f;
    r.thresholds[size_t(j)] = thr;
  }
  return r;
}

// The authors' pools (CBST's MXNet solve_ST.py, `--pool-sampling authors`), replayed as their
// Python does it: every pool starts as np.float32(0); per image and class the confidences of
// the pixels predicted as that class, in raster order, sub-sampled [0::K] and appended; CBST
// sorts each class pool, ST starts a global pool from 0.0 and appends every class pool, zero
// included; len_thresh = floor(len·p), threshold = pool[len_thresh − 1] (Python's index −1,
// the smallest entry, when len_thresh = 0 in ST; CBST skips that case), then 0 → 1.0.
inline ReferenceThresholds reference_authors_thresholds(const LabelingCase& c,
                                                        const std::vector<float>& scores,
                                                        int64_t every) {
  const int64_t pixels = c.height * c.width;
  std::vector<std::vector<float>> array_cls(size_t(c.classes), std::vector<float>{0.0f});
  ReferenceThresholds r{std::vector<float>(size_t(c.classes), 0.0f),
                        std::vector<int64_t>(size_t(c.classes), 0)};
  for (int64_t i = 0; i < c.images; ++i) {
    std::vector<int64_t> pred(static_cast<size_t>(pixels));
    std::vector<float> conf(static_cast<size_t>(pixels));
    for (int64_t k = 0; k < pixels; ++k) {
      const ReferenceBest b = reference_best(c, scores, i, k);
      pred[size_t(k)] = b.label;
      conf[size_t(k)] = b.value;
    }
    for (int64_t j = 0; j < c.classes; ++j) {
      std::vector<float> mask;  // conf[pred == j]
      for (int64_t k = 0; k < pixels; ++k)
        if (pred[size_t(k)] == j) mask.push_back(conf[size_t(k)]);
      for (size_t k = 0; k < mask.size(); k += size_t(every)) {  // [0::every]
        array_cls[size_t(j)].push_back(mask[k]);
        ++r.pool_sizes[size_t(j)];
      }
    }
  }
  auto threshold_of = [&](std::vector<float> pool, bool python_negative_index) {
    std::sort(pool.begin(), pool.end(), std::greater<float>());
    const int64_t len_thresh = int64_t(std::floor(double(pool.size()) * c.portion));
    if (len_thresh == 0) return python_negative_index ? pool.back() : 0.0f;
    return pool[size_t(len_thresh - 1)];
  };
  if (c.policy == ThresholdPolicy::st) {
    std::vector<float> array_pixel{0.0f};
    for (const auto& pool : array_cls) array_pixel.insert(array_pixel.end(), pool.begin(), pool.end());
    std::fill(r.thresholds.begin(), r.thresholds.end(), threshold_of(array_pixel, true));
  } else {
    for (int64_t j = 0; j < c.classes; ++j) r.thresholds[size_t(j)] = threshold_of(array_cls[size_t(j)], false);
  }
  for (float& t : r.thresholds)
    if (t == 0.0f) t = 1.0f;  // cls_thresh[cls_thresh == 0] = 1.0
  return r;
}

struct ReferenceLabels {
  std::vector<uint8_t> labels;
  std::vector<float> confidence;
};

inline ReferenceLabels reference_labels(const LabelingCase& c, const std::vector<float>& scores,
                                        const std::vector<float>& thresholds) {
  const int64_t pixels = c.height * c.width;
  ReferenceLabels r;
  for (int64_t i = 0; i < c.images; ++i) {
    for (int64_t k = 0; k < pixels; ++k) {
      int64_t best = 0;
      float rmax = 0.0f;
      for (int64_t j = 0; j < c.classes; ++j) {
        const float v = scores[size_t((i * c.classes + j) * pixels + k)] / thresholds[size_t(j)];
        if (j == 0 || v > rmax) {
          rmax = v;
          best = j;
        }
      }
      r.labels.push_back(rmax >= 1.0f ? uint8_t(best) : uint8_t(255));
      r.confidence.push_back(rmax);
    }
  }
  return r;
}

inline ThresholdParams threshold_params(const LabelingCase& c) {
  return {.policy = c.policy,
          .portion = c.portion,
          .pool_stride = c.pool_stride,
          .label_size = {c.height, c.width}};
}

// threshold_params of the case with the authors' sampling at every K-th pixel of a class.
inline ThresholdParams authors_threshold_params(const LabelingCase& c, int64_t every) {
  ThresholdParams params = threshold_params(c);
  params.pool_stride = every;
  params.sampling = PoolSampling::authors;
  return params;
}

}  // namespace cbst::testing
