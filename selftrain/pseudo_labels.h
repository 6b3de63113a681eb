// Class thresholds and pseudo-labels (Zou et al., ECCV 2018, §3–4; DESIGN.md §7).
//
// Notation, for a target pixel n of the label grid and a class c:
//   p_n(c)  softmax probability, bilinearly interpolated from the network resolution
//           (h, w) to the label resolution (H, W) with align_corners=false, exactly as
//           torch.nn.functional.interpolate(mode="bilinear");
//   q_n(c)  spatial prior, interpolated from (Hp, Wp) to (H, W) the same way; 1 without one;
//   s_n(c) = q_n(c)·p_n(c), the selection score;
//   ĉ_n = argmax_c s_n(c) (lowest class on ties), m_n = s_n(ĉ_n), the confidence.
//
// Thresholds (class_thresholds):
//   pools  CBST: one pool per class c holding the m_n with ĉ_n = c.
//          ST:   one global pool holding every m_n; every class gets its threshold.
//   rank   sort a pool in descending order, t = ⌊n·p⌋ (n = pool size, p = portion),
//          threshold = pool[t−1], the t-th largest value. An empty pool or t = 0 gives 1.0
//          (the class can then only be labelled where s ≥ 1), and so does a threshold that
//          comes out ≤ 0, as in the authors' code (`cls_thresh[cls_thresh == 0] = 1`).
//   pool_stride K, sampling pixel_index (the default): a pixel enters the pools iff its flat
//          index y·W + x *within its image* is a multiple of K (K = 1: every pixel).
//   pool_stride K, sampling authors: exactly the authors' MXNet code (solve_ST.py): per image
//          and class, the confidences of that class's pixels in raster order, of which every
//          K-th is kept (`[0::K]`, K = 4 there), and each class pool starts from one spurious
//          0.0 (`np.float32(0)`); ST's global pool starts from its own 0.0 and gathers every
//          class pool with its zero, so it holds 1 + C zeros. The zeros count in n (so in
//          t = ⌊n·p⌋) and sort last. Both samplings are systematic samples of the same set;
//          pixel_index needs no per-class prefix count, so its GPU pass is one sweep, while
//          the authors' needs a per-tile rank pass first.
//   pool_sizes[c] = number of pool entries predicted as class c, the spurious zeros not
//          counted (for ST the global pool size is their sum).
//
// Labels (pseudo_labels):
//   r_n(c) = s_n(c) / threshold(c);  label_n = argmax_c r_n(c) (lowest class on ties) if
//   max_c r_n(c) ≥ 1, else ignore_index (255). A pixel exactly at its threshold is kept.
//
// Both run on the device of `probs` (cpu: plain loops and std::nth_element; cuda: the fused
// two-pass histogram kernels, which give bit-identical thresholds and labels). Every
// multiply and add rounds on its own on both devices, so the two agree exactly.
#pragma once

#include <cstdint>
#include <string>

#include "engine/tensor.h"

namespace cbst {

enum class ThresholdPolicy : uint8_t {
  st,    // self-training: one global pool
  cbst,  // class-balanced: one pool per predicted class
};
const char* threshold_policy_name(ThresholdPolicy p);        // "st", "cbst"
ThresholdPolicy threshold_policy_from_name(const std::string& name);

// Label resolution; 0 means "the resolution of the probabilities".
struct LabelSize {
  int64_t height = 0;
  int64_t width = 0;
};

enum class PoolSampling : uint8_t {
  pixel_index,  // flat index within the image a multiple of K
  authors,      // every K-th pixel of each class per image, plus the spurious zeros
};
const char* pool_sampling_name(PoolSampling s);  // "pixel-index", "authors"
PoolSampling pool_sampling_from_name(const std::string& name);

struct ThresholdParams {
  ThresholdPolicy policy = ThresholdPolicy::cbst;
  double portion = 0.2;     // p in [0, 1]: the fraction of each pool that is selected
  int64_t pool_stride = 1;  // K ≥ 1: sub-sampling of the pools (see above)
  PoolSampling sampling = PoolSampling::pixel_index;
  LabelSize label_size = {};
};

struct ClassThresholds {
  Tensor thresholds;  // f32 (C): exp(−k_c), on the device of probs
  Tensor pool_sizes;  // i64 (C): pool entries predicted as each class
};

struct LabelParams {
  LabelSize label_size = {};
  bool with_confidence = false;  // also return max_c r_n(c)
};

struct PseudoLabels {
  Tensor labels;      // u8 (N, H, W); kIgnoreLabel where not selected
  Tensor confidence;  // f32 (N, H, W): max_c r_n(c); undefined unless asked for
};

constexpr uint8_t kIgnoreLabel = 255;

// probs: f32 (N, C, h, w) on cpu or cuda; spatial_prior: f32 (C, Hp, Wp) on the same device,
// or an undefined Tensor for q = 1. Requires 1 ≤ C ≤ 255.
ClassThresholds class_thresholds(const Tensor& probs, const Tensor& spatial_prior,
                                 const ThresholdParams& params);

// thresholds: f32 (C) on the device of probs (as class_thresholds returns them).
PseudoLabels pseudo_labels(const Tensor& probs, const Tensor& spatial_prior,
                           const Tensor& thresholds, const LabelParams& params = {});

// s_n(c) materialised: f32 (N, C, H, W). For inspection and tests; the two functions above
// never build it.
Tensor selection_scores(const Tensor& probs, const Tensor& spatial_prior,
                        LabelSize label_size = {});

}  // namespace cbst
