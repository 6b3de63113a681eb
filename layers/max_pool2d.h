// max_pool2d: 2-D max pooling with stride, implicit −∞ padding and ceil mode.
//
// Same semantics as torch.nn.functional.max_pool2d(x, kernel, stride, pad, dilation=1,
// ceil_mode) (square windows):
//   y[n, c, i, j] = max_{p, q < k} x[n, c, i·s − pad + p, j·s − pad + q]   (padding never wins)
//   Ho = ⌊(H + 2·pad − k) / s⌋ + 1, or with ceil_mode ⌈(H + 2·pad − k) / s⌉ + 1, and then,
//   as torch (and Caffe), the last window is dropped when it would start at or past
//   H + pad, i.e. inside the right padding: if ((Ho − 1)·s ≥ H + pad) Ho −= 1.  Likewise Wo.
//   Requires pad ≤ k / 2 and Ho, Wo ≥ 1 (as torch).
//   x: (N, C, H, W) f32/f64   y: (N, C, Ho, Wo)
// Ties: the first maximum in window order (row-major) wins; NaN propagates (counts as the
// maximum), as torch. Forward saves the argmax of each window (i64, index h·W + w inside the
// (n, c) plane, torch's convention) and backward routes dy there:
//   dx[n, c, h, w] = Σ_{(i, j): argmax(i, j) = h·W + w} dy[n, c, i, j]
// CPU: scatter loop. CUDA: gather form (each input element sums over the windows that
// contain it, in a fixed order): no atomics, deterministic.
//
// FCN-VGG16 uses MaxPool2d{.kernel = 2, .stride = 2, .ceil_mode = true} (Caffe rounds up).
#pragma once

#include <cstdint>
#include <utility>

#include "engine/tensor.h"
#include "layers/module.h"

namespace cbst {

struct MaxPool2dOptions {
  int64_t kernel = 2;
  int64_t stride = 0;  // 0: the kernel size (torch's default)
  int64_t pad = 0;
  bool ceil_mode = false;
};

// Output length along one axis under the rules above; errors name the sizes.
int64_t max_pool2d_output_size(int64_t input, const MaxPool2dOptions& options);

Tensor max_pool2d(const Tensor& x, const MaxPool2dOptions& options = {});  // (N, C, H, W)
// The pooled values and the argmax indices (i64, same shape as y), as return_indices=True.
std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x,
                                                  const MaxPool2dOptions& options = {});

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(const MaxPool2dOptions& options = {}) : options_(options) {}
  Tensor forward(const Tensor& x) override { return max_pool2d(x, options_); }
  const MaxPool2dOptions& options() const { return options_; }

 private:
  MaxPool2dOptions options_;
};

}  // namespace cbst
