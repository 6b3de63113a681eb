// Backends of selftrain/pseudo_labels.h: the CPU twin and the CUDA kernels. Internal; free of
// CUDA headers. Front-ends (pseudo_labels.cpp) check arguments and allocate outputs; these
// only compute, on raw pointers of the device named by the front-end.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/dtype.h"
#include "selftrain/labeling_math.h"
#include "selftrain/pseudo_labels.h"

namespace cbst::labeling {

struct PoolParams {
  bool global_pool = false;  // ST
  double portion = 0.2;
  int64_t pool_stride = 1;
  // The authors' sampling: every pool_stride-th entry of each class per image in raster
  // order, and one 0.0 per class pool (1 + C in ST's global pool); see pseudo_labels.h.
  bool authors_sampling = false;
};

// The authors' spurious zeros: one per class pool; ST's global pool gathers the pool 0.0
// it starts from and every class pool's own, 1 + C.
inline int64_t authors_zero_entries(bool global_pool, int64_t classes) {
  return global_pool ? 1 + classes : 1;
}

// Checks the inputs of the labelling ops (f32 probs (N, C, h, w), optional prior (C, Hp, Wp)
// on the same device; `op` names the caller in errors) and describes where the scores come
// from. `probs_c` and `prior_c` keep the contiguous copies alive while the source is used.
ScoreSource score_source(const char* op, const Tensor& probs, const Tensor& prior, LabelSize size,
                         Tensor& probs_c, Tensor& prior_c);

// The pools of `images` images as order keys (order_key of each confidence), one pool per
// class (one for ST's global pool), without the authors' spurious zeros; counts[c] = pool
// entries predicted as class c. Threshold selection runs on these: by std::nth_element in one
// process (class_thresholds_cpu), by histograms summed across ranks in several
// (selftrain/distributed_thresholds.h).
struct Pools {
  std::vector<std::vector<uint32_t>> keys;
  std::vector<int64_t> counts;
};
Pools collect_pools_cpu(const ScoreSource& src, int64_t images, const PoolParams& params);

// thresholds: (C) f32, pool_sizes: (C) i64.
void class_thresholds_cpu(float* thresholds, int64_t* pool_sizes, const ScoreSource& src,
                          int64_t images, const PoolParams& params);
// labels: (N, H, W) u8; confidence: (N, H, W) f32 or null; thresholds: (C) f32.
void pseudo_labels_cpu(uint8_t* labels, float* confidence, const ScoreSource& src,
                       int64_t images, const float* thresholds);
// scores: (N, C, H, W) f32.
void selection_scores_cpu(float* scores, const ScoreSource& src, int64_t images);

#if CBST_WITH_CUDA
void class_thresholds_cuda(float* thresholds, int64_t* pool_sizes, const ScoreSource& src,
                           int64_t images, const PoolParams& params, Device device);
void pseudo_labels_cuda(uint8_t* labels, float* confidence, const ScoreSource& src,
                        int64_t images, const float* thresholds);
void selection_scores_cuda(float* scores, const ScoreSource& src, int64_t images);

// Device-to-device copy bandwidth of a `bytes` buffer (GB/s, counting the read and the
// write), the reference the labelling benchmark reports against.
double device_copy_bandwidth_gbs(int64_t bytes, int repeats, Device device);
#endif

}  // namespace cbst::labeling
