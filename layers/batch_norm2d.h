// batch_norm2d: per-channel normalisation of (N, C, H, W) activations.
//
// Same semantics as torch.nn.functional.batch_norm(x, running_mean, running_var, weight,
// bias, training, momentum, eps) on 4-D input:
//   training:  μ_c = mean over (n, h, w) of x;  σ²_c = biased variance (divide by m = N·H·W)
//              y = (x − μ_c) / √(σ²_c + eps) · γ_c + β_c
//              running_mean ← (1 − momentum)·running_mean + momentum·μ_c
//              running_var  ← (1 − momentum)·running_var  + momentum·σ²_c·m/(m − 1)  (unbiased)
//              (the running statistics are updated in place when defined; m must be > 1)
//   otherwise: y = (x − running_mean) / √(running_var + eps) · γ + β  (no update)
//   x, y: (N, C, H, W)   running_mean, running_var, weight (γ), bias (β): (C); γ and β may be
//   undefined (no affine transform).
// Backward. Training mode saves μ and 1/√(σ² + eps) (C each) and x̂ = (x − μ)·invstd:
//   dβ = Σ dy,  dγ = Σ dy·x̂,  dx = γ·invstd/m · (m·dy − dβ − x̂·dγ)   (sums over n, h, w)
// Running-statistics mode (eval, and "frozen" training) treats the statistics as constants:
//   dx = dy·γ·invstd,  dγ = Σ dy·x̂,  dβ = Σ dy.
// CPU: straightforward loops with f64 accumulation. CUDA: cuDNN (spatial mode; the
// persistent mode is avoided, see reference/performance.md §2); eps must be ≥
// CUDNN_BN_MIN_EPSILON on the GPU (0 in cuDNN 9, so any eps ≥ 0). Backward in
// running-statistics mode uses engine ops.
//
// Synchronised statistics (options.sync, a communicator of several ranks; data-parallel
// training, as torch.nn.SyncBatchNorm): μ and σ² are taken over the global batch, all ranks'
// values (m = Σ over ranks of N·H·W): Σx is summed across ranks, then Σ(x − μ)² (two passes,
// as above), so every rank normalises with the statistics a single process would compute on
// the whole batch and updates the running statistics identically. Backward sums Σdy and
// Σdy·x̂ across ranks before dx = γ·invstd/m · (m·dy − Σdy − x̂·Σdy·x̂); dγ and dβ stay this
// rank's sums (the gradient all-reduce adds them). Engine ops on either device, the per-channel
// sums exchanged in f64 through host memory: 2 small all-reduces forward, 1 backward.
#pragma once

#include <cstdint>

#include "engine/tensor.h"
#include "layers/module.h"

namespace cbst {

namespace dist {
class Communicator;
}

struct BatchNorm2dOptions {
  bool training = false;  // batch statistics (and running-stat update) vs running statistics
  double momentum = 0.1;
  double eps = 1e-5;
  dist::Communicator* sync = nullptr;  // training: statistics over the ranks of this communicator
};

Tensor batch_norm2d(const Tensor& x,             // (N, C, H, W)
                    const Tensor& running_mean,  // (C), may be undefined when training
                    const Tensor& running_var,   // (C), may be undefined when training
                    const Tensor& weight,        // (C) γ or undefined
                    const Tensor& bias,          // (C) β or undefined
                    const BatchNorm2dOptions& options = {});

// Module options: BatchNorm2dParams{.num_features = 64, .eps = 1.001e-5}.
struct BatchNorm2dParams {
  int64_t num_features = 0;
  double eps = 1e-5;
  double momentum = 0.1;
  bool affine = true;               // parameters weight (ones) and bias (zeros)
  bool track_running_stats = true;  // buffers running_mean, running_var, num_batches_tracked
  // PyTorch's momentum=None: the running statistics are the plain average of every batch's
  // since the last reset (factor 1/num_batches_tracked), not an exponential one.
  bool cumulative_average = false;
};

// train(): batch statistics, running statistics updated. eval(): running statistics.
// freeze(): running statistics even in train() mode and no update (ResNet-38 during
// adaptation); the affine parameters stay trainable unless train_affine is false.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(const BatchNorm2dParams& params, DType dtype = DType::f32);
  Tensor forward(const Tensor& x) override;

  void freeze(bool train_affine = true);
  void unfreeze();
  // PyTorch's reset_running_stats(): mean 0, variance 1, no batch tracked.
  void reset_running_stats();
  // Switches between the exponential average (params().momentum) and the cumulative one.
  void set_cumulative_average(bool on) { params_.cumulative_average = on; }
  bool frozen() const { return frozen_; }
  // Batch statistics over the ranks of `comm` in train() mode (null: this process's batch).
  void set_sync(dist::Communicator* comm) { sync_ = comm; }

  const BatchNorm2dParams& params() const { return params_; }
  Tensor& weight() { return weight_; }
  Tensor& bias() { return bias_; }
  Tensor& running_mean() { return running_mean_; }
  Tensor& running_var() { return running_var_; }
  Tensor& num_batches_tracked() { return num_batches_tracked_; }  // i64 scalar

 private:
  BatchNorm2dParams params_;
  bool frozen_ = false;
  dist::Communicator* sync_ = nullptr;
  Tensor weight_, bias_, running_mean_, running_var_, num_batches_tracked_;
};

// set_sync(comm) on every BatchNorm2d in the module tree under `root`.
void sync_batch_norm(Module& root, dist::Communicator* comm);

}  // namespace cbst
