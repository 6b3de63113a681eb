// SGD with momentum, weight decay, parameter groups, learning-rate schedules and optional
// global gradient-norm clipping. Same update as torch.optim.SGD (dampening 0, no Nesterov):
//   g   ← grad · clip_scale + wd · decay_mult · p
//   buf ← μ · buf + g            (buf starts at 0, so the first step gives buf = g, as torch)
//   p   ← p − lr(t) · lr_mult · buf        (μ = 0: p ← p − lr · lr_mult · g, no buffer)
// clip_scale = max_norm / (‖grad‖₂ + 1e-6) when the global L2 norm over all gradients exceeds
// max_grad_norm (torch.nn.utils.clip_grad_norm_), else 1.
// Schedules (t = completed steps): constant lr; step lr·γ^⌊t/step_size⌋; poly
// lr·(1 − min(t, max_iter)/max_iter)^power; optional linear warm-up over the first iterations
// (LrSchedule::warmup_iters). The reference's "alex" groups: weights lr×1,
// wd×1; biases lr×2, wd×0 (alex_param_groups).
// step() runs under NoGradGuard with one fused in-place kernel per parameter (CPU loop or
// CUDA kernel); momentum buffers are allocated at the first step only. Parameters without a
// gradient are skipped (as torch). zero_grad() zeroes gradients in place, keeping them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "layers/module.h"

namespace cbst {

struct ParamGroup {
  std::string name = {};
  NamedTensors params = {};  // (name, parameter); names key the checkpointed state
  double lr_mult = 1.0;
  double decay_mult = 1.0;
};

// Weights (lr×1, wd×1) and biases — names ending in "bias" or "beta" — (lr×2, wd×0).
std::vector<ParamGroup> alex_param_groups(const NamedTensors& params);

struct LrSchedule {
  enum class Kind { constant, step, poly };
  Kind kind = Kind::constant;
  double gamma = 0.1;      // step
  int64_t step_size = 1;   // step
  double power = 0.9;      // poly
  int64_t max_iter = 1;    // poly
  // Linear warm-up (any kind): for t < warmup_iters the rate is scaled by a factor rising
  // linearly from warmup_ratio to 1, as mmcv's `warmup='linear'`. 0: none.
  int64_t warmup_iters = 0;
  double warmup_ratio = 0.1;
};

struct SgdOptions {
  double lr = 0.01;
  double momentum = 0.9;
  double weight_decay = 0.0;
  double max_grad_norm = 0.0;  // 0: no clipping
  LrSchedule schedule = {};
};

class Sgd {
 public:
  Sgd(std::vector<ParamGroup> groups, const SgdOptions& options);

  void zero_grad();
  void step();

  // The base learning rate (before schedule and group multipliers); set_lr changes it,
  // e.g. lr/√2 after each self-training round.
  double base_lr() const { return options_.lr; }
  void set_lr(double lr) { options_.lr = lr; }
  double current_lr() const;  // base · schedule factor at the current iteration
  int64_t iteration() const { return iteration_; }
  // Global gradient L2 norm before clipping at the last step (computed only when clipping).
  double last_grad_norm() const { return last_grad_norm_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }

  // "iteration" (i64 scalar), "lr" (f64 scalar) and "momentum_buffer.<param name>".
  std::map<std::string, Tensor> state() const;
  // Restores what state() exported: "iteration" and "lr" must be present; a parameter
  // without a momentum buffer entry restarts from a zero buffer; shapes are checked.
  void load_state(const std::map<std::string, Tensor>& state);

 private:
  std::vector<ParamGroup> groups_;
  SgdOptions options_;
  int64_t iteration_ = 0;
  double last_grad_norm_ = 0.0;
  std::vector<std::vector<Tensor>> buffers_;  // per group, per parameter
  Tensor norm_scratch_;                       // f64, one slot per parameter (clipping)
};

double lr_at(const SgdOptions& options, int64_t iteration);

}  // namespace cbst
