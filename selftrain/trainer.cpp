#include "selftrain/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <optional>

#include <nlohmann/json.hpp>

#include "engine/autograd.h"
#include "engine/dist.h"
#include "layers/softmax_cross_entropy.h"

namespace cbst {

namespace {
// Tests simulate a killed run: exit abruptly (no cleanup) before step N.
int64_t abort_at_step() {
  const char* v = std::getenv("CBST_TEST_ABORT_AT_STEP");
  return v ? std::atoll(v) : -1;
}

// The cross-entropy's normaliser for this rank's batch: Σ w_{y_p} over the non-ignored pixels
// (their count without class weights).
double loss_normaliser(const Tensor& labels, const Tensor& class_weights) {
  const std::vector<uint8_t> y = labels.to(Device::cpu()).contiguous().to_vector<uint8_t>();
  std::vector<int64_t> counts(256, 0);
  for (uint8_t v : y) ++counts[v];
  counts[255] = 0;  // ignore_index
  const std::vector<float> w = class_weights.defined() ? class_weights.to(Device::cpu()).to_vector<float>()
                                                       : std::vector<float>();
  double total = 0;
  for (size_t c = 0; c < 255; ++c)
    if (counts[c]) total += double(counts[c]) * (c < w.size() ? double(w[c]) : 1.0);
  return total;
}

std::vector<Tensor> trainable_parameters(const Sgd& optimizer) {
  std::vector<Tensor> params;
  for (const ParamGroup& g : optimizer.groups())
    for (const auto& [name, p] : g.params) params.push_back(p);
  return params;
}
}  // namespace

EpochStats train_epoch(SegmentationModel& model, Sgd& optimizer, data::Loader& loader,
                       const EpochContext& ctx) {
  const auto t0 = std::chrono::steady_clock::now();
  model.train();
  loader.start_epoch(ctx.epoch);
  Progress progress(ctx.label, loader.batches_per_epoch());
  EpochStats stats;
  double window = 0;
  int64_t window_n = 0;
  const int64_t abort_step = abort_at_step();
  dist::Communicator& comm = dist::world();
  std::optional<dist::GradientBuckets> buckets;
  if (comm.size() > 1) buckets.emplace(trainable_parameters(optimizer));
  while (auto batch = loader.next()) {
    if (abort_step >= 0 && ctx.global_step && *ctx.global_step == abort_step) std::_Exit(137);
    optimizer.zero_grad();
    const Tensor logits = model.forward(batch->images);
    const Tensor loss = ctx.loss ? ctx.loss(logits, *batch)
                                 : softmax_cross_entropy(logits, batch->labels, {.class_weights = ctx.class_weights});
    double l = loss.item<float>();
    double share = 1.0;  // this rank's part of the global batch's loss (see the header)
    if (buckets) {
      const double w = loss_normaliser(batch->labels, ctx.class_weights);
      double sums[2] = {w, w * l};
      comm.all_reduce_sum(sums, 2);
      share = sums[0] > 0 ? w / sums[0] : 0.0;
      l = sums[0] > 0 ? sums[1] / sums[0] : sums[1];  // NaN anywhere makes it NaN everywhere
    }
    const int64_t step = ctx.global_step ? *ctx.global_step : stats.steps;
    if (!std::isfinite(l)) {
      CBST_THROW("the loss became ", l, " at step ", step, " (", ctx.label, ", batch ", stats.steps,
                 "); the run stopped", ctx.last_checkpoint.empty() ? std::string()
                                                                  : "; the last good checkpoint is " + ctx.last_checkpoint,
                 "; hint: lower --lr or check the labels");
    }
    if (buckets) {
      loss.backward(Tensor::full({}, share, loss.dtype(), loss.device()));
      buckets->all_reduce(comm);
    } else {
      loss.backward();
    }
    optimizer.step();
    stats.mean_loss += l;
    ++stats.steps;
    window += l;
    ++window_n;
    if (ctx.global_step) ++*ctx.global_step;
    char status[64];
    std::snprintf(status, sizeof status, "loss %.4f", l);
    progress.update(stats.steps, status);
    if (ctx.run && (stats.steps % ctx.log_every == 0 || stats.steps == loader.batches_per_epoch())) {
      ctx.run->metric({{"epoch", ctx.epoch},
                       {"step", ctx.global_step ? *ctx.global_step : stats.steps},
                       {"loss", window / double(window_n)},
                       {"lr", optimizer.current_lr()}},
                      ctx.round);
      window = 0;
      window_n = 0;
    }
  }
  stats.mean_loss = stats.steps ? stats.mean_loss / double(stats.steps) : 0.0;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char status[96];
  std::snprintf(status, sizeof status, "mean loss %.4f", stats.mean_loss);
  progress.finish(status);
  return stats;
}

}  // namespace cbst
