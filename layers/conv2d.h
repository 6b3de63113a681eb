// conv2d: 2-D cross-correlation with stride, zero padding and dilation (groups = 1).
//
// Same semantics as torch.nn.functional.conv2d(x, w, b, stride, padding, dilation):
//   y[n, o, i, j] = b[o] + Σ_{c, p, q} w[o, c, p, q] · x[n, c, i·s − pad + p·d, j·s − pad + q·d]
// with x read as 0 outside the image.
//   x: (N, Ci, H, W)   w: (Co, Ci, kh, kw)   b: (Co) or undefined   y: (N, Co, Ho, Wo)
//   Ho = ⌊(H + 2·pad − d·(kh − 1) − 1) / s⌋ + 1   (likewise Wo)
// Backward needs x and w (saved detached):
//   dx = Σ_o "full correlation" of dy with w (backward-data),  dw[o, c, p, q] = Σ dy · x-patch,
//   db[o] = Σ_{n,i,j} dy[n, o, i, j].
// CPU: im2col + GEMM (OpenBLAS when present), f32 and f64. CUDA: cuDNN, the algorithm chosen
// once per shape by cuDNN's heuristics and cached; TF32 tensor cores when tf32_enabled(),
// deterministic algorithms only when deterministic().
#pragma once

#include <cstdint>

#include "engine/tensor.h"
#include "layers/module.h"

namespace cbst {

// Geometry of the functional op (the same in both spatial directions).
struct Conv2dOptions {
  int64_t stride = 1;
  int64_t pad = 0;
  int64_t dilation = 1;
};

Tensor conv2d(const Tensor& x,  // (N, Ci, H, W)
              const Tensor& w,  // (Co, Ci, kh, kw)
              const Tensor& b,  // (Co) or undefined
              const Conv2dOptions& options = {});

// Module options: Conv2dParams{.in_channels = 3, .out_channels = 64, .kernel = 3, .pad = 1}.
struct Conv2dParams {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t kernel = 3;
  int64_t pad = 0;
  int64_t dilation = 1;
  int64_t stride = 1;
  bool bias = true;
  // false: the weight is left uninitialised (a model that initialises or loads it itself).
  bool initialize = true;
  Conv2dOptions options() const { return {.stride = stride, .pad = pad, .dilation = dilation}; }
};

// Parameters: weight (Co, Ci, k, k), Kaiming-normal (fan_in, ReLU gain); bias (Co), zeros.
class Conv2d : public Module {
 public:
  explicit Conv2d(const Conv2dParams& params, DType dtype = DType::f32);
  Tensor forward(const Tensor& x) override;
  const Conv2dParams& params() const { return params_; }
  Tensor& weight() { return weight_; }
  Tensor& bias() { return bias_; }  // undefined when params.bias is false

 private:
  Conv2dParams params_;
  Tensor weight_, bias_;
};

}  // namespace cbst
