// CRST's regularisers (see crst.h for the forms and where they come from).
#include "selftrain/crst.h"

#include <cmath>
#include <limits>

#include "engine/ops.h"
#include "layers/soft_cross_entropy.h"
#include "layers/softmax_cross_entropy.h"
#include "selftrain/labeling_kernels.h"

namespace cbst {

Regularizer regularizer_from_name(const std::string& name) {
  if (name == "none") return Regularizer::none;
  if (name == "mrkld") return Regularizer::mrkld;
  if (name == "lrent") return Regularizer::lrent;
  CBST_THROW("unknown regularizer '", name, "'; expected none, mrkld (KL model regulariser) or ",
             "lrent (entropy label regulariser)");
}

const char* regularizer_name(Regularizer r) {
  switch (r) {
    case Regularizer::none: return "none";
    case Regularizer::mrkld: return "mrkld";
    case Regularizer::lrent: return "lrent";
  }
  return "?";
}

double default_reg_weight(Regularizer r) {
  switch (r) {
    case Regularizer::none: return 0.0;
    case Regularizer::mrkld: return 0.01;  // mrkld.sh's 0.1, applied twice by crst_seg.py
    case Regularizer::lrent: return 0.25;  // lrent.sh's --lr-weight-ent
  }
  return 0.0;
}

Tensor mrkld_loss(const Tensor& logits, const Tensor& labels, const std::vector<bool>& regularized,
                  double weight, const Tensor& class_weights) {
  CBST_CHECK(logits.dim() == 4 && int64_t(regularized.size()) == logits.size(0),
             "mrkld_loss: logits must be (N, C, H, W) with one regularized flag per sample, got ",
             logits.str(), " and ", regularized.size(), " flags");
  const Tensor ce = softmax_cross_entropy(logits, labels, {.class_weights = class_weights});
  if (weight == 0.0) return ce;
  const int64_t n = logits.size(0), classes = logits.size(1);
  // Uniform targets 1/C on the non-ignored pixels of the regularised samples.
  // In the logits' dtype throughout, so that f64 gradient checks see 1/C exactly.
  std::vector<double> flags(regularized.begin(), regularized.end());
  const Tensor sample = Tensor::from_vector<double>(flags, {n, 1, 1}).to(logits.dtype()).to(labels.device());
  const Tensor mask = mul(ne(labels, 255.0).to(logits.dtype()), sample);  // (N, H, W)
  const Tensor uniform = mul(mask, 1.0 / double(classes)).unsqueeze(1).expand(logits.shape());
  return add(ce, mul(soft_cross_entropy(logits, uniform.contiguous()), weight));
}

bool lrent_soft_label(double* soft, const float* scores, const float* thresholds, int64_t classes,
                      double alpha) {
  // (s/k)^{1/α} normalised, through logs and the largest term so that 1/α = 4 and small
  // thresholds do not overflow: ŷ_c = exp((log r_c − max log r)/α) / Σ.
  double top = -std::numeric_limits<double>::infinity();
  for (int64_t c = 0; c < classes; ++c) {
    soft[c] = std::log(double(scores[c]) / double(thresholds[c]));
    top = std::max(top, soft[c]);
  }
  if (!std::isfinite(top)) {  // every score 0 (or a NaN): no label
    for (int64_t c = 0; c < classes; ++c) soft[c] = 0.0;
    return false;
  }
  double total = 0.0;
  for (int64_t c = 0; c < classes; ++c) total += (soft[c] = std::exp((soft[c] - top) / alpha));
  double reg = 0.0, sel = 0.0;
  for (int64_t c = 0; c < classes; ++c) {
    soft[c] /= total;
    reg += -soft[c] * std::log(double(scores[c]) + 1e-32) + alpha * soft[c] * std::log(soft[c] + 1e-32);
    sel += -soft[c] * std::log(double(thresholds[c]) + 1e-32);
  }
  return reg < sel;
}

namespace {

Tensor cpu_f32(const Tensor& t) {
  return t.defined() ? t.to(Device::cpu()).to(DType::f32).contiguous() : Tensor();
}

}  // namespace

Tensor lrent_pseudo_labels(const Tensor& probs, const Tensor& spatial_prior,
                           const Tensor& thresholds, double alpha, LabelSize label_size) {
  CBST_CHECK(alpha > 0, "lrent: the regularizer weight α must be positive, got ", alpha);
  Tensor p, q;
  const labeling::ScoreSource src =
      labeling::score_source("lrent", cpu_f32(probs), cpu_f32(spatial_prior), label_size, p, q);
  const LabelSize size{src.height, src.width};
  const std::vector<float> k = cpu_f32(thresholds).to_vector<float>();
  CBST_CHECK(int64_t(k.size()) == p.size(1), "lrent: ", k.size(), " thresholds for ", p.size(1), " classes");
  const int64_t n = p.size(0), classes = p.size(1);
  Tensor labels = Tensor::empty({n, size.height, size.width}, DType::u8);
  uint8_t* out = labels.data<uint8_t>();
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n * size.height; ++row) {
    const int64_t i = row / size.height, y = row % size.height;
    std::vector<float> s(static_cast<size_t>(classes));
    std::vector<double> soft(static_cast<size_t>(classes));
    for (int64_t x = 0; x < size.width; ++x) {
      const labeling::PixelTaps t = labeling::pixel_taps(src, y, x);
      for (int32_t c = 0; c < src.classes; ++c) s[size_t(c)] = labeling::score(src, i, c, t);
      const bool keep = lrent_soft_label(soft.data(), s.data(), k.data(), classes, alpha);
      int64_t best = 0;
      for (int64_t c = 1; c < classes; ++c)
        if (soft[size_t(c)] > soft[size_t(best)]) best = c;
      out[row * size.width + x] = keep ? uint8_t(best) : kIgnoreLabel;
    }
  }
  return labels;
}

LrentTargets::LrentTargets(const Tensor& probs, const Tensor& spatial_prior, const Tensor& thresholds,
                           double alpha, LabelSize label_size)
    : probs_(cpu_f32(probs)), prior_(cpu_f32(spatial_prior)),
      thresholds_(cpu_f32(thresholds).to_vector<float>()), alpha_(alpha), size_(label_size) {
  if (size_.height == 0) size_.height = probs_.size(2);
  if (size_.width == 0) size_.width = probs_.size(3);
}

Tensor LrentTargets::build(const data::Batch& batch, int64_t target_offset, Device device) const {
  const Tensor labels = batch.labels.to(Device::cpu()).contiguous();
  const int64_t n = labels.size(0), h = labels.size(1), w = labels.size(2);
  const int64_t classes = probs_.size(1);
  CBST_CHECK(batch.draws.size() == size_t(n) && batch.indices.size() == size_t(n),
             "lrent: the batch carries no sample geometry");
  Tensor p, q;  // contiguous already: the same storage
  const labeling::ScoreSource src = labeling::score_source("lrent", probs_, prior_, size_, p, q);
  const uint8_t* lab = labels.data<uint8_t>();
  std::vector<float> out(size_t(n * classes * h * w), 0.0f);
  std::vector<float> s(static_cast<size_t>(classes));
  std::vector<double> soft(static_cast<size_t>(classes));
  for (int64_t b = 0; b < n; ++b) {
    const int64_t target = batch.indices[size_t(b)] - target_offset;
    CBST_CHECK(target < probs_.size(0), "lrent: sample ", batch.indices[size_t(b)],
               " is past the round's ", probs_.size(0), " target images");
    const data::AugmentDraw& d = batch.draws[size_t(b)];
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const uint8_t y_label = lab[(b * h + y) * w + x];
        if (y_label == kIgnoreLabel) continue;
        float* o = out.data() + b * classes * h * w + y * w + x;
        if (target < 0) {  // a source sample: one-hot
          o[int64_t(y_label) * h * w] = 1.0f;
          continue;
        }
        const int ly = data::augment_label_row(d, int(y), int(size_.height));
        const int lx = data::augment_label_column(d, int(x), int(size_.width));
        const labeling::PixelTaps t = labeling::pixel_taps(src, ly, lx);
        for (int32_t c = 0; c < src.classes; ++c) s[size_t(c)] = labeling::score(src, target, c, t);
        lrent_soft_label(soft.data(), s.data(), thresholds_.data(), classes, alpha_);
        for (int64_t c = 0; c < classes; ++c) o[c * h * w] = float(soft[size_t(c)]);
      }
  }
  return Tensor::from_vector<float>(out, {n, classes, h, w}).to(device);
}

}  // namespace cbst
