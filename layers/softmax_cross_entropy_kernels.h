// Kernel interface of softmax_cross_entropy (internal; no CUDA headers). Tensors are
// contiguous; logits viewed as (N, C, inner), labels as (N, inner).
#pragma once

#include <cstdint>
#include <limits>

#include "engine/tensor.h"

namespace cbst::layer_kernels {

// Returned by the forward when every label is valid.
constexpr int64_t kAllLabelsValid = std::numeric_limits<int64_t>::min();

}  // namespace cbst::layer_kernels

// forward: writes loss (0-d), weight_sum (0-d) and lse (N·inner), all in the logits' dtype;
//   `weights` may be undefined. Returns kAllLabelsValid or the value of the first bad label.
// backward: dx = g · w_y (softmax − onehot) / weight_sum, 0 for ignored pixels and when
//   weight_sum is 0; g and weight_sum are 0-d tensors on the device.
#define CBST_DECLARE_CE_KERNELS(ns)                                                          \
  namespace cbst::layer_kernels::ns {                                                        \
  int64_t cross_entropy_forward(const Tensor& loss, const Tensor& weight_sum, const Tensor& lse, \
                                const Tensor& logits, const Tensor& labels,                 \
                                const Tensor& weights, int64_t ignore_index);                \
  void cross_entropy_backward(const Tensor& dx, const Tensor& g, const Tensor& logits,       \
                              const Tensor& labels, const Tensor& weights, const Tensor& lse, \
                              const Tensor& weight_sum, int64_t ignore_index);               \
  }

CBST_DECLARE_CE_KERNELS(cpu)
CBST_DECLARE_CE_KERNELS(cuda)
#undef CBST_DECLARE_CE_KERNELS
