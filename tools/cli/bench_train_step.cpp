// `cbst bench train-step`: images/s and peak memory of one training step of a model
// (DESIGN §9; reference/performance.md §1). tools/bench/train_step_torch.py runs the same
// computation in PyTorch for the side-by-side comparison on a GPU host.
//
// The step is the one cbst train / cbst adapt run (selftrain/trainer.cpp): zero_grad →
// forward at the input size → softmax cross-entropy (ignore 255) → loss read back to the
// host → backward → SGD (momentum 0.9, weight decay 5e-4, the authors' lr/decay groups,
// selftrain/training_setup.h). ResNet-38's batch norm is frozen as in adaptation. Inputs are
// random (N, 3, S, S) images in [-2, 2] and random labels of which about 1 in 10 is 255;
// the model is randomly initialised (timing does not depend on the weights' values).
//
// --mode infer times inference instead: the forward alone in eval mode under NoGradGuard
// (dropout off, batch norm on running statistics), as tools/bench/train_step_torch.py
// --mode infer does; its "loss" column is the mean logit, a check that the forward ran.
//
// --precision bf16 runs the model's convolutions in bf16 mixed precision (layers/module.h,
// Precision), as cbst train --precision bf16 does; the JSON records "precision".
//
// Before timing, the first step's loss must be finite. Then --warmup steps (algorithm
// choice, workspaces, momentum buffers), then --steps timed steps (device synchronised at
// both ends). Peak memory covers the timed steps only: CUDA, the allocator's high-water
// mark of live tensors after cuda_reset_peak_memory (as torch.cuda.max_memory_allocated
// after reset_peak_memory_stats); CPU, the process's peak resident set (VmHWM of
// /proc/self/status, reset through /proc/self/clear_refs when the kernel allows it).
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/atomic_file.h"
#include "engine/autograd.h"
#include "engine/blas_core.h"
#include "engine/cuda_context.h"
#include "engine/json.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "engine/storage.h"
#include "layers/softmax_cross_entropy.h"
#include "models/segmentation_model.h"
#include "selftrain/training_setup.h"
#include "tools/cli/bench_timing.h"
#include "tools/cli/registry.h"
#include "tools/cli/training_options.h"
#include "tools/cli/validators.h"

namespace cbst {
namespace {

struct TrainStepOptions {
  std::string model = "fcn8s-vgg16";
  std::string mode = "train";  // or "infer"
  std::string device = "cpu";  // CPU unless --device cuda, as every subcommand
  int64_t size = 0;    // 0: 500 on cuda, 128 on cpu
  int64_t batch = 1;
  int steps = 0;       // 0: 20 on cuda, 3 on cpu
  int warmup = 0;      // 0: 5 on cuda, 1 on cpu
  int64_t classes = 19;
  double lr = 1e-3;
  std::string precision = "f32";
  std::string json;
};

struct TrainStepResult {
  double ms_per_step = 0;
  double images_per_s = 0;
  double peak_bytes = 0;
  std::string peak_kind;
  double first_loss = 0, last_loss = 0;
  int64_t parameters = 0, trainable = 0;
  CpuCacheStats cache_before, cache_after;  // CPU block cache around the timed steps
};

std::string join_names(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

using cli::now_s;

// A "VmHWM:   123456 kB" line of /proc/self/status, in bytes (0 when unreadable).
double peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      double kb = 0;
      fields >> kb;
      return kb * 1024.0;
    }
  return 0;
}

// Writing "5" to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0).
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return f.good();
}

// Labels in [0, C) with about 10% ignore_index (255), as pseudo-labels have.
Tensor random_labels(int64_t n, int64_t h, int64_t w, int64_t classes, Generator& gen) {
  std::vector<uint8_t> v(size_t(n * h * w));
  for (uint8_t& l : v) l = gen.next_below(10) == 0 ? 255 : uint8_t(gen.next_below(uint64_t(classes)));
  return Tensor::from_vector<uint8_t>(v, {n, h, w});
}

TrainStepResult run_steps(const TrainStepOptions& o, Device d) {
  auto model = create_model(o.model, {.num_classes = o.classes, .seed = 1});
  TrainStepResult r;
  for (auto& [name, t] : model->named_parameters()) {
    r.parameters += t.numel();
    if (t.requires_grad()) r.trainable += t.numel();
  }
  model->to(d);
  model->set_precision(precision_from_name(o.precision));
  model->train();
  if (o.model == "resnet38") model->set_frozen_batch_norm(true);
  TrainingOptions training;  // momentum 0.9, weight decay 5e-4
  Sgd optimizer = make_optimizer(*model, training, o.lr);

  Generator gen(7);
  const Tensor images = rand_uniform({o.batch, 3, o.size, o.size}, -2, 2, DType::f32, Device::cpu(), &gen).to(d);
  const Tensor labels = random_labels(o.batch, o.size, o.size, o.classes, gen).to(d);
  const bool infer = o.mode == "infer";
  if (infer) model->eval();
  auto infer_step = [&] {
    NoGradGuard no_grad;
    return double(mean(model->forward(images)).item<float>());
  };
  auto step = [&] {
    if (infer) return infer_step();
    optimizer.zero_grad();
    const Tensor loss = softmax_cross_entropy(model->forward(images), labels);
    const double l = loss.item<float>();
    loss.backward();
    optimizer.step();
    return l;
  };

  r.first_loss = step();
  CBST_CHECK(std::isfinite(r.first_loss), "bench train-step: the first step's loss of ", o.model, " is ",
             r.first_loss, "; the step is wrong, not timing it");
  for (int i = 1; i < o.warmup; ++i) step();
  if (d.is_cuda()) {
    cuda_synchronize(d.index);
    cuda_reset_peak_memory(d.index);
    r.peak_kind = "allocated";
  } else {
    r.peak_kind = reset_peak_rss() ? "rss" : "rss since start";
  }
  if (d.is_cuda()) cuda_synchronize(d.index);
  r.cache_before = cpu_cache_stats();
  const double t0 = now_s();
  for (int i = 0; i < o.steps; ++i) r.last_loss = step();
  if (d.is_cuda()) cuda_synchronize(d.index);
  const double seconds = now_s() - t0;
  r.cache_after = cpu_cache_stats();
  r.ms_per_step = seconds * 1e3 / o.steps;
  r.images_per_s = double(o.batch * o.steps) / seconds;
  r.peak_bytes = d.is_cuda() ? double(cuda_memory_stats(d.index).peak_allocated) : peak_rss_bytes();
  return r;
}

void run(TrainStepOptions o) {
  const Device d = Device::parse(o.device);
  CBST_CHECK(!d.is_cuda() || cuda_available(), "bench train-step: --device ", o.device,
             " but no CUDA device is available; use --device cpu");
  const bool reduced = o.size == 0 && !d.is_cuda();
  if (o.size == 0) o.size = d.is_cuda() ? 500 : 128;
  if (o.steps == 0) o.steps = d.is_cuda() ? 20 : 3;
  if (o.warmup == 0) o.warmup = d.is_cuda() ? 5 : 1;

  const TrainStepResult r = run_steps(o, d);
  const double mib = r.peak_bytes / (1024.0 * 1024.0);
  std::printf("%s: %s, input %lldx%lld, batch %lld, %lld classes, %s, %s%s, %d threads\n",
              o.mode == "infer" ? "inference" : "train step", o.model.c_str(),
              (long long)o.size, (long long)o.size, (long long)o.batch, (long long)o.classes,
              o.precision == "bf16" ? "bf16 mixed precision" : "f32",
              d.is_cuda() ? cuda_device_name(d.index).c_str() : "cpu",
              d.is_cuda() ? (tf32_enabled() ? ", TF32 on" : ", TF32 off") : "", omp_get_max_threads());
  if (reduced) std::printf("note: cpu run at the reduced size 128 (the GPU benchmark uses 500); set --size\n");
  if (!d.is_cuda()) std::printf("cpu gemm: %s\n", kern::cpu_gemm_description().c_str());
  std::printf("parameters: %lld (%lld trainable)%s\n", (long long)r.parameters, (long long)r.trainable,
              o.model == "resnet38" ? ", batch norm frozen" : "");
  std::printf("%-12s %6s %6s %6s %6s %10s %10s %12s %17s\n", "model", "device", "size", "batch", "steps",
              "ms/step", "images/s", "peak MiB", "loss first/last");
  std::printf("%-12s %6s %6lld %6lld %6d %10.1f %10.3f %12.0f %8.4f/%-8.4f\n", o.model.c_str(),
              d.is_cuda() ? "cuda" : "cpu", (long long)o.size, (long long)o.batch, o.steps, r.ms_per_step,
              r.images_per_s, mib, r.first_loss, r.last_loss);
  std::printf("peak memory: %s\n", d.is_cuda() ? "device bytes allocated by live tensors (cuda_memory_stats)"
                                               : r.peak_kind == "rss" ? "process peak RSS over the timed steps (VmHWM)"
                                                                      : "process peak RSS since start (VmHWM; reset refused)");
  if (!o.json.empty()) {
    const Json js = {{"benchmark", "train-step"}, {"mode", o.mode}, {"implementation", "cbst"},
                     {"threads", omp_get_max_threads()}, {"cpu_gemm", kern::cpu_gemm_description()},
                     {"model", o.model}, {"device", d.is_cuda() ? "cuda" : "cpu"},
                     {"device_name", d.is_cuda() ? cuda_device_name(d.index) : std::string("cpu")}, {"size", o.size},
                     {"batch", o.batch}, {"classes", o.classes}, {"steps", o.steps}, {"warmup", o.warmup},
                     {"tf32", d.is_cuda() && tf32_enabled()}, {"precision", o.precision},
                     {"parameters", r.parameters},
                     {"trainable_parameters", r.trainable}, {"ms_per_step", r.ms_per_step},
                     {"images_per_s", r.images_per_s}, {"peak_memory_bytes", static_cast<long long>(r.peak_bytes)},
                     {"peak_memory_kind", r.peak_kind}, {"first_loss", r.first_loss}, {"last_loss", r.last_loss}};
    write_text_atomic(o.json, json_text(js, 2) + "\n");
  }
  if (!d.is_cuda())
    std::printf("cpu block cache over the timed steps: %lld hits, %lld misses, %.0f MiB cached at the end\n",
                (long long)(r.cache_after.hits - r.cache_before.hits),
                (long long)(r.cache_after.misses - r.cache_before.misses), double(r.cache_after.cached_bytes) / (1 << 20));
  // Random weights without ImageNet statistics can diverge; the steps timed are still the
  // steps that ship (the first one was checked), so this is a note, not an error.
  if (!std::isfinite(r.last_loss))
    std::printf("note: the loss became %g during the timed steps (random weights); lower --lr\n", r.last_loss);
}

cli::Command reg({.parent = "bench", .name = "train-step",
                  .help = "images/s and peak memory of one SGD training step of a model"},
                 [](CLI::App& cmd) {
                   auto o = std::make_shared<TrainStepOptions>();
                   cmd.add_option("--model", o->model, "a registered model: " + join_names(model_names()))->capture_default_str();
                   cmd.add_option("--mode", o->mode, "train: the SGD step; infer: forward in eval mode, no grad")
                       ->check(CLI::IsMember({"train", "infer"}))->capture_default_str();
                   cmd.add_option("--device", o->device, "cpu, cuda or cuda:N")->capture_default_str();
                   cmd.add_option("--size", o->size, "input size S×S (default 500 cuda, 128 cpu)")
                       ->check(cbst::cli::InRange(32, 4096));
                   cmd.add_option("--batch", o->batch, "images per step")->check(cbst::cli::InRange(1, 256))->capture_default_str();
                   cmd.add_option("--steps", o->steps, "timed steps (default 20 cuda, 3 cpu)")->check(cbst::cli::InRange(1, 100000));
                   cmd.add_option("--warmup", o->warmup, "untimed steps first, the checked one included "
                                                         "(default 5 cuda, 1 cpu)")->check(cbst::cli::InRange(1, 1000));
                   cmd.add_option("--classes", o->classes, "number of classes")->check(cbst::cli::InRange(2, 255))->capture_default_str();
                   cmd.add_option("--lr", o->lr, "SGD learning rate")->check(cbst::cli::Positive())->capture_default_str();
                   cli::add_precision_option(cmd, o->precision);
                   cmd.add_option("--json", o->json, "also write the result as JSON here");
                   cmd.callback([o] { run(*o); });
                 });

}  // namespace
}  // namespace cbst
