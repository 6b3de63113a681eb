#include "selftrain/batch_norm_statistics.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "data/transforms.h"
#include "engine/autograd.h"
#include "engine/check.h"
#include "layers/batch_norm2d.h"

namespace cbst {

namespace {

void collect(Module& m, std::vector<BatchNorm2d*>& norms) {
  if (auto* bn = dynamic_cast<BatchNorm2d*>(&m); bn && bn->params().track_running_stats) norms.push_back(bn);
  for (auto& [name, child] : m.named_children()) collect(*child, norms);
}

// Puts the model back as it was: its mode, every layer's exponential average, and the layers
// that were frozen (ResNet-38 while it adapts) frozen again, their affine parameters training
// or not as before.
class RestoreOnExit {
 public:
  RestoreOnExit(Module& model, std::vector<BatchNorm2d*> norms)
      : model_(model), was_training_(model.training()), norms_(std::move(norms)) {
    for (BatchNorm2d* bn : norms_)
      if (bn->frozen()) frozen_.emplace_back(bn, !bn->weight().defined() || bn->weight().requires_grad());
  }
  ~RestoreOnExit() {
    for (BatchNorm2d* bn : norms_) bn->set_cumulative_average(false);
    for (auto& [bn, train_affine] : frozen_) bn->freeze(train_affine);
    model_.train(was_training_);
  }
  RestoreOnExit(const RestoreOnExit&) = delete;
  RestoreOnExit& operator=(const RestoreOnExit&) = delete;

 private:
  Module& model_;
  bool was_training_;
  std::vector<BatchNorm2d*> norms_;
  std::vector<std::pair<BatchNorm2d*, bool>> frozen_;  // (layer, its affine parameters train)
};

}  // namespace

int64_t batch_norm_layer_count(Module& model) {
  std::vector<BatchNorm2d*> norms;
  collect(model, norms);
  return int64_t(norms.size());
}

BatchNormStatisticsSummary recompute_batch_norm_statistics(SegmentationModel& model, const data::Dataset& dataset,
                                                           const BatchNormStatisticsOptions& options) {
  CBST_CHECK(options.batch >= 1, "the batch must hold at least one image, got ", options.batch);
  std::vector<BatchNorm2d*> norms;
  collect(model, norms);
  if (norms.empty())
    CBST_THROW("the model ", model.name(), " has no batch-norm layer, so there are no statistics to re-estimate");
  const int64_t total = options.limit < 0 ? int64_t(dataset.size()) : std::min<int64_t>(options.limit, dataset.size());
  if (total == 0) CBST_THROW("no images in ", dataset.describe(), "; re-estimating statistics needs some");

  const data::Normalization norm = data::Normalization::from_name(
      options.input_convention.empty() ? model.input_convention() : options.input_convention);
  const std::vector<Tensor> params = model.parameters();
  if (params.empty() || params.front().device() != options.device) model.to(options.device);

  RestoreOnExit restore(model, norms);
  model.train(true);
  for (BatchNorm2d* bn : norms) {
    if (bn->frozen()) bn->unfreeze();
    bn->reset_running_stats();
    bn->set_cumulative_average(true);
  }
  NoGradGuard no_grad;
  BatchNormStatisticsSummary summary{.layers = int64_t(norms.size())};
  // Images are read in order; `pending` holds one read ahead when its size ended a batch.
  std::optional<data::Image> pending;
  int64_t next = 0;
  while (next < total || pending) {
    std::vector<data::Image> images;
    if (pending) {
      images.push_back(std::move(*pending));
      pending.reset();
    }
    while (int64_t(images.size()) < options.batch && next < total) {
      data::Image image = dataset.read_image(size_t(next++));
      if (!images.empty() && (image.width != images.front().width || image.height != images.front().height)) {
        pending = std::move(image);
        break;
      }
      images.push_back(std::move(image));
    }
    const int64_t n = int64_t(images.size()), h = images.front().height, w = images.front().width;
    Tensor x = Tensor::empty({n, 3, h, w});
    for (int64_t i = 0; i < n; ++i) data::normalize(x.data<float>() + i * 3 * h * w, images[size_t(i)], norm);
    model.logits(options.device.is_cpu() ? x : x.to(options.device));
    summary.images += n;
    ++summary.batches;
    if (options.progress) options.progress(summary.images, total);
  }
  return summary;
}

}  // namespace cbst
