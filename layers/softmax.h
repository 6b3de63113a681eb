// softmax / log_softmax over the channel dimension (dim 1).
//
// Same semantics as torch.nn.functional.softmax(x, dim=1) and log_softmax(x, dim=1).
// x: (N, C) or (N, C, H, W) (any rank ≥ 2; dim 1 holds the classes), f32 or f64.
//
//   softmax:      y_c = exp(x_c − m) / Σ_k exp(x_k − m),   m = max_k x_k
//   log_softmax:  y_c = x_c − m − log Σ_k exp(x_k − m)
//
// The max subtraction keeps exp() from overflowing; it does not change the value.
// Backward saves only the output y:
//   softmax:      dx_c = y_c · (dy_c − Σ_k dy_k·y_k)
//   log_softmax:  dx_c = dy_c − exp(y_c) · Σ_k dy_k
// CPU: plain loops over (n, pixel). CUDA: cuDNN cudnnSoftmaxForward/Backward with
// CUDNN_SOFTMAX_ACCURATE (softmax) or CUDNN_SOFTMAX_LOG, CUDNN_SOFTMAX_MODE_CHANNEL.
#pragma once

#include "engine/tensor.h"

namespace cbst {

Tensor softmax(const Tensor& x);      // x: (N, C, ...) -> same shape
Tensor log_softmax(const Tensor& x);  // x: (N, C, ...) -> same shape

}  // namespace cbst
