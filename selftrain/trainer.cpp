#include "selftrain/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "engine/autograd.h"
#include "layers/softmax_cross_entropy.h"

namespace cbst {

namespace {
// Tests simulate a killed run: exit abruptly (no cleanup) before step N.
int64_t abort_at_step() {
  const char* v = std::getenv("CBST_TEST_ABORT_AT_STEP");
  return v ? std::atoll(v) : -1;
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
  while (auto batch = loader.next()) {
    if (abort_step >= 0 && ctx.global_step && *ctx.global_step == abort_step) std::_Exit(137);
    optimizer.zero_grad();
    const Tensor logits = model.forward(batch->images);
    const Tensor loss = ctx.loss ? ctx.loss(logits, *batch)
                                 : softmax_cross_entropy(logits, batch->labels, {.class_weights = ctx.class_weights});
    const double l = loss.item<float>();
    const int64_t step = ctx.global_step ? *ctx.global_step : stats.steps;
    if (!std::isfinite(l)) {
      CBST_THROW("the loss became ", l, " at step ", step, " (", ctx.label, ", batch ", stats.steps,
                 "); the run stopped", ctx.last_checkpoint.empty() ? std::string()
                                                                  : "; the last good checkpoint is " + ctx.last_checkpoint,
                 "; hint: lower --lr or check the labels");
    }
    loss.backward();
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
