// Front-ends of class_thresholds / pseudo_labels / selection_scores: argument checks,
// output allocation, device dispatch. The math is in labeling_math.h; the loops in
// pseudo_labels_cpu.cpp and pseudo_labels_cuda.cu.
#include "selftrain/pseudo_labels.h"

#include <limits>

#include "engine/dispatch.h"
#include "selftrain/labeling_kernels.h"

namespace cbst {

const char* threshold_policy_name(ThresholdPolicy p) {
  return p == ThresholdPolicy::st ? "st" : "cbst";
}

ThresholdPolicy threshold_policy_from_name(const std::string& name) {
  if (name == "st") return ThresholdPolicy::st;
  if (name == "cbst") return ThresholdPolicy::cbst;
  CBST_THROW("unknown threshold policy '", name, "'; expected 'st' (one global pool) or 'cbst' "
             "(one pool per class)");
}

const char* pool_sampling_name(PoolSampling s) {
  return s == PoolSampling::authors ? "authors" : "pixel-index";
}

PoolSampling pool_sampling_from_name(const std::string& name) {
  if (name == "pixel-index") return PoolSampling::pixel_index;
  if (name == "authors") return PoolSampling::authors;
  CBST_THROW("unknown pool sampling '", name, "'; expected 'pixel-index' (pixels whose index in ",
             "their image is a multiple of K) or 'authors' (every K-th pixel of each class, plus ",
             "the authors' zero per pool)");
}

namespace {

constexpr int64_t kMaxDim = std::numeric_limits<int32_t>::max();

}  // namespace

labeling::ScoreSource labeling::score_source(const char* op, const Tensor& probs, const Tensor& prior,
                                             LabelSize size, Tensor& probs_c, Tensor& prior_c) {
  CBST_CHECK(probs.defined(), op, ": probs is undefined");
  CBST_CHECK(probs.dim() == 4, op, ": probs must be (N, C, h, w), got ", probs.str());
  CBST_CHECK(probs.dtype() == DType::f32, op, ": probs must be f32, got ", probs.str());
  const int64_t classes = probs.size(1);
  CBST_CHECK(classes >= 1 && classes <= 255, op, ": ", classes,
             " classes; labels are u8 with 255 as ignore, so 1 to 255 classes are supported");
  CBST_CHECK(probs.size(2) >= 1 && probs.size(3) >= 1 && probs.size(2) <= kMaxDim &&
                 probs.size(3) <= kMaxDim,
             op, ": bad probs shape ", probs.str());
  if (size.height == 0) size.height = probs.size(2);
  if (size.width == 0) size.width = probs.size(3);
  CBST_CHECK(size.height >= 1 && size.width >= 1 && size.height <= kMaxDim &&
                 size.width <= kMaxDim,
             op, ": bad label size ", size.height, "x", size.width);
  probs_c = probs.contiguous();

  labeling::ScoreSource s;
  s.probs = probs_c.data<float>();
  s.classes = int32_t(classes);
  s.h = int32_t(probs.size(2));
  s.w = int32_t(probs.size(3));
  s.height = int32_t(size.height);
  s.width = int32_t(size.width);
  s.py = labeling::make_axis(s.h, s.height);
  s.px = labeling::make_axis(s.w, s.width);
  if (prior.defined()) {
    CBST_CHECK(prior.dim() == 3 && prior.size(0) == classes, op,
               ": spatial_prior must be (C, Hp, Wp) with C = ", classes, " as in probs ",
               shape_str(probs.shape()), ", got ", shape_str(prior.shape()));
    CBST_CHECK(prior.dtype() == DType::f32, op, ": spatial_prior must be f32, got ", prior.str());
    CBST_CHECK(prior.device() == probs.device(), op, ": spatial_prior is on ",
               prior.device().str(), " but probs on ", probs.device().str(),
               "; move one with .to(device)");
    CBST_CHECK(prior.size(1) >= 1 && prior.size(2) >= 1 && prior.size(1) <= kMaxDim &&
                   prior.size(2) <= kMaxDim,
               op, ": bad spatial_prior shape ", prior.str());
    prior_c = prior.contiguous();
    s.prior = prior_c.data<float>();
    s.hp = int32_t(prior.size(1));
    s.wp = int32_t(prior.size(2));
    s.qy = labeling::make_axis(s.hp, s.height);
    s.qx = labeling::make_axis(s.wp, s.width);
  }
  return s;
}

ClassThresholds class_thresholds(const Tensor& probs, const Tensor& spatial_prior,
                                 const ThresholdParams& params) {
  const char* op = "class_thresholds";
  CBST_CHECK(params.portion >= 0.0 && params.portion <= 1.0, op, ": portion must lie in [0, 1], got ",
             params.portion);
  CBST_CHECK(params.pool_stride >= 1, op, ": pool_stride must be ≥ 1, got ", params.pool_stride);
  Tensor probs_c, prior_c;
  const labeling::ScoreSource src =
      labeling::score_source(op, probs, spatial_prior, params.label_size, probs_c, prior_c);
  const Device device = probs.device();
  ClassThresholds out{Tensor::empty({src.classes}, DType::f32, device),
                      Tensor::empty({src.classes}, DType::i64, device)};
  const labeling::PoolParams pp{.global_pool = params.policy == ThresholdPolicy::st,
                                .portion = params.portion,
                                .pool_stride = params.pool_stride,
                                .authors_sampling = params.sampling == PoolSampling::authors};
  const int64_t images = probs.size(0);
  if (device.is_cuda()) {
#if CBST_WITH_CUDA
    cuda_op_begin(device);
    labeling::class_thresholds_cuda(out.thresholds.data<float>(), out.pool_sizes.data<int64_t>(),
                                    src, images, pp, device);
    cuda_op_end(op);
#else
    throw_no_cuda_build(op);
#endif
  } else {
    labeling::class_thresholds_cpu(out.thresholds.data<float>(), out.pool_sizes.data<int64_t>(),
                                   src, images, pp);
  }
  return out;
}

PseudoLabels pseudo_labels(const Tensor& probs, const Tensor& spatial_prior,
                           const Tensor& thresholds, const LabelParams& params) {
  const char* op = "pseudo_labels";
  Tensor probs_c, prior_c;
  const labeling::ScoreSource src =
      labeling::score_source(op, probs, spatial_prior, params.label_size, probs_c, prior_c);
  CBST_CHECK(thresholds.defined() && thresholds.dim() == 1 && thresholds.size(0) == src.classes &&
                 thresholds.dtype() == DType::f32,
             op, ": thresholds must be f32 (C) with C = ", src.classes, ", got ",
             thresholds.defined() ? thresholds.str() : std::string("undefined"));
  const Device device = probs.device();
  CBST_CHECK(thresholds.device() == device, op, ": thresholds are on ", thresholds.device().str(),
             " but probs on ", device.str(), "; move them with .to(device)");
  const Tensor thr = thresholds.contiguous();
  const int64_t images = probs.size(0);
  PseudoLabels out;
  out.labels = Tensor::empty({images, src.height, src.width}, DType::u8, device);
  if (params.with_confidence)
    out.confidence = Tensor::empty({images, src.height, src.width}, DType::f32, device);
  float* conf = params.with_confidence ? out.confidence.data<float>() : nullptr;
  if (device.is_cuda()) {
#if CBST_WITH_CUDA
    cuda_op_begin(device);
    labeling::pseudo_labels_cuda(out.labels.data<uint8_t>(), conf, src, images,
                                 thr.data<float>());
    cuda_op_end(op);
#else
    throw_no_cuda_build(op);
#endif
  } else {
    labeling::pseudo_labels_cpu(out.labels.data<uint8_t>(), conf, src, images, thr.data<float>());
  }
  return out;
}

Tensor selection_scores(const Tensor& probs, const Tensor& spatial_prior, LabelSize label_size) {
  const char* op = "selection_scores";
  Tensor probs_c, prior_c;
  const labeling::ScoreSource src =
      labeling::score_source(op, probs, spatial_prior, label_size, probs_c, prior_c);
  const Device device = probs.device();
  const int64_t images = probs.size(0);
  Tensor out = Tensor::empty({images, src.classes, src.height, src.width}, DType::f32, device);
  if (device.is_cuda()) {
#if CBST_WITH_CUDA
    cuda_op_begin(device);
    labeling::selection_scores_cuda(out.data<float>(), src, images);
    cuda_op_end(op);
#else
    throw_no_cuda_build(op);
#endif
  } else {
    labeling::selection_scores_cpu(out.data<float>(), src, images);
  }
  return out;
}

}  // namespace cbst
