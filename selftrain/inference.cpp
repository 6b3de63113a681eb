#include "selftrain/inference.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <tuple>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "layers/softmax.h"
#include "layers/upsample.h"

namespace cbst {

namespace {

// Puts the model in eval mode for its lifetime and restores the previous mode, also when
// inference throws.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(SegmentationModel& model) : model_(model), was_training_(model.training()) {
    model_.eval();
  }
  ~EvalModeGuard() { model_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  SegmentationModel& model_;
  bool was_training_;
};

void check_inputs(const SegmentationModel& model, const Tensor& images, const InferenceOptions& options) {
  CBST_CHECK(images.dim() == 4 && images.size(1) == 3, model.name(),
             ": inference expects images (N, 3, H, W), got ", shape_str(images.shape()));
  CBST_CHECK(images.dtype() == DType::f32, model.name(), ": inference expects normalised f32 images, got ",
             images.str());
  CBST_CHECK(!options.scales.empty(), "inference needs at least one test scale (e.g. 1.0)");
  for (double s : options.scales)
    CBST_CHECK(std::isfinite(s) && s > 0, "test scales must be positive, got ", scales_text(options.scales));
  CBST_CHECK(options.out_height >= 0 && options.out_width >= 0 &&
                 (options.out_height == 0) == (options.out_width == 0),
             "inference output size must give both height and width (or neither), got ", options.out_height,
             "x", options.out_width);
  const std::vector<Tensor> params = model.parameters();
  if (!params.empty())
    CBST_CHECK(params.front().device() == images.device(), model.name(), " lives on ",
               params.front().device().str(), " but the images are on ", images.device().str(),
               "; move them with .to(device)");
}

int64_t scaled_extent(int64_t n, double scale) {
  return std::max<int64_t>(1, std::llround(double(n) * scale));
}

// One run's probabilities at the output size.
Tensor probabilities_at(const Tensor& logits, int64_t out_h, int64_t out_w) {
  Tensor p = softmax(logits);
  if (p.size(2) == out_h && p.size(3) == out_w) return p;
  return upsample_bilinear(p, {.height = out_h, .width = out_w, .align_corners = false});
}

// model.logits with the run's size in any error: a test scale that shrinks a small image below
// what the network can pool is the usual cause.
Tensor run_logits(SegmentationModel& model, const Tensor& x, double scale) {
  try {
    return model.logits(x);
  } catch (const Error& e) {
    std::ostringstream s;
    s << model.name() << " at test scale " << scale << " (input " << x.size(2) << "x" << x.size(3) << "): ";
    rethrow_with_context(e, s.str(), "; hint: use larger test scales or a larger input");
  }
}

}  // namespace

std::string scales_text(const std::vector<double>& scales) {
  std::ostringstream s;
  for (size_t i = 0; i < scales.size(); ++i) s << (i ? "," : "") << scales[i];
  return s.str();
}

std::pair<int64_t, int64_t> network_output_size(const SegmentationModel& model, int64_t height,
                                                int64_t width) {
  const int64_t s = model.output_stride();
  CBST_CHECK(s >= 1, model.name(), ": output stride must be positive, got ", s);
  return {(height + s - 1) / s, (width + s - 1) / s};
}

Tensor predict_probabilities(SegmentationModel& model, const Tensor& images, const InferenceOptions& options) {
  check_inputs(model, images, options);
  const int64_t h = images.size(2), w = images.size(3);
  int64_t out_h = options.out_height, out_w = options.out_width;
  if (out_h == 0) std::tie(out_h, out_w) = network_output_size(model, h, w);

  NoGradGuard no_grad;
  EvalModeGuard eval_mode(model);
  Tensor total;
  int64_t runs = 0;
  auto accumulate = [&](const Tensor& p) {
    total = total.defined() ? total + p : p;
    ++runs;
  };
  for (double s : options.scales) {
    const int64_t sh = scaled_extent(h, s), sw = scaled_extent(w, s);
    const Tensor x = (sh == h && sw == w)
                         ? images
                         : upsample_bilinear(images, {.height = sh, .width = sw, .align_corners = false});
    const Tensor logits = run_logits(model, x, s);
    CBST_CHECK(logits.dim() == 4 && logits.size(0) == images.size(0) && logits.size(1) == model.num_classes(),
               model.name(), ": logits ", shape_str(logits.shape()), " do not match ", images.size(0),
               " images and ", model.num_classes(), " classes");
    if (sh == h && sw == w && options.out_height == 0) {
      // The default output size assumes the ⌈H / stride⌉ rule; a model breaking it is a bug.
      CBST_CHECK(logits.size(2) == out_h && logits.size(3) == out_w, model.name(), ": logits at ",
                 logits.size(2), "x", logits.size(3), " for a ", h, "x", w, " input, but output stride ",
                 model.output_stride(), " implies ", out_h, "x", out_w);
    }
    accumulate(probabilities_at(logits, out_h, out_w));
    if (options.flip) {
      const Tensor mirrored = flip(run_logits(model, flip(x, 3), s), 3);
      accumulate(probabilities_at(mirrored, out_h, out_w));
    }
  }
  return runs == 1 ? total : total * (1.0 / double(runs));
}

Tensor predict_labels(SegmentationModel& model, const Tensor& images, const InferenceOptions& options) {
  InferenceOptions o = options;
  if (o.out_height == 0 && o.out_width == 0 && images.dim() == 4) {
    o.out_height = images.size(2);
    o.out_width = images.size(3);
  }
  const Tensor probs = predict_probabilities(model, images, o);
  NoGradGuard no_grad;
  return argmax(probs, 1).to(DType::u8);
}

}  // namespace cbst
