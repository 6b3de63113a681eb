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

std::string epoch_label(int64_t round, int64_t rounds, int64_t epoch, int64_t epochs) {
  const std::string e = "epoch " + std::to_string(epoch) + "/" + std::to_string(epochs);
  return round > 0 ? "round " + std::to_string(round) + "/" + std::to_string(rounds) + " " + e : e;
}

EpochStats train_epoch(SegmentationModel& model, Sgd& optimizer, data::Loader& loader,
                       const EpochContext& ctx) {
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  const auto t0 = Clock::now();
  model.train();
  loader.start_epoch(ctx.loader_epoch);
  const int64_t batches = loader.batches_per_epoch();
  // The bar on a terminal; the log lines below say the rest.
  Progress progress(ctx.label, batches, ctx.run, /*plain_lines=*/false);
  EpochStats stats;
  double window = 0, window_data = 0, window_step = 0;
  int64_t window_n = 0;
  const int64_t abort_step = abort_at_step();
  dist::Communicator& comm = dist::world();
  std::optional<dist::GradientBuckets> buckets;
  if (comm.size() > 1)
    buckets.emplace(comm, trainable_parameters(optimizer), dist::GradientBuckets::Options{.overlap = ctx.overlap_allreduce});
  auto fetch_start = Clock::now();
  while (auto batch = loader.next()) {
    const auto fetched = Clock::now();
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
    const double lr = optimizer.current_lr();  // the rate this step uses
    if (buckets) {
      loss.backward(Tensor::full({}, share, loss.dtype(), loss.device()));  // launches buckets when overlapping
      buckets->finish();
    } else {
      loss.backward();
    }
    optimizer.step();
    const auto done = Clock::now();
    const double data_time = seconds(fetch_start, fetched), step_time = seconds(fetch_start, done);
    fetch_start = done;
    stats.mean_loss += l;
    ++stats.steps;
    window += l;
    window_data += data_time;
    window_step += step_time;
    ++window_n;
    if (ctx.global_step) ++*ctx.global_step;
    if (ctx.eta) ctx.eta->step_done(step_time);
    const double eta = ctx.eta ? ctx.eta->seconds_left() : NAN;
    progress.update(stats.steps, "loss " + format_fixed(l, 4) + (ctx.eta ? ", run ETA " + format_duration(eta) : ""));
    if (ctx.run && (stats.steps % ctx.log_every == 0 || stats.steps == batches)) {
      const int64_t global = ctx.global_step ? *ctx.global_step : stats.steps;
      const MemoryUse mem = memory_use(logits.device());
      const double mean_loss = window / double(window_n), mean_data = window_data / double(window_n),
                   mean_step = window_step / double(window_n);
      Json record;
      if (ctx.round > 0) record["round"] = ctx.round;
      record["epoch"] = ctx.epoch;
      record["step"] = global;
      record["loss"] = mean_loss;
      record["lr"] = lr;
      record["data_time"] = mean_data;
      record["step_time"] = mean_step;
      record["peak_rss_mib"] = std::round(mem.peak_rss_mib);
      if (mem.cuda_peak_mib >= 0) record["cuda_peak_mib"] = std::round(mem.cuda_peak_mib);
      record["eta_seconds"] = std::isfinite(eta) ? Json(std::round(eta)) : Json();
      ctx.run->metric(record);
      char lr_text[32];
      std::snprintf(lr_text, sizeof lr_text, "%.3g", lr);
      ctx.run->log(ctx.label + " step " + std::to_string(global) +
                   (ctx.eta ? "/" + std::to_string(ctx.eta->total_steps()) : std::string()) + ": loss " +
                   format_fixed(mean_loss, 4) + ", lr " + lr_text + ", data " + format_fixed(1000 * mean_data, 0) +
                   " ms, step " + format_fixed(1000 * mean_step, 0) + " ms, peak RSS " +
                   format_fixed(mem.peak_rss_mib, 0) + " MiB" +
                   (mem.cuda_peak_mib >= 0 ? ", CUDA peak " + format_fixed(mem.cuda_peak_mib, 0) + " MiB" : "") +
                   (ctx.eta ? ", run ETA " + format_duration(eta) : std::string()));
      window = window_data = window_step = 0;
      window_n = 0;
    }
  }
  stats.mean_loss = stats.steps ? stats.mean_loss / double(stats.steps) : 0.0;
  stats.seconds = seconds(t0, Clock::now());
  progress.finish("mean loss " + format_fixed(stats.mean_loss, 4));
  return stats;
}

}  // namespace cbst
