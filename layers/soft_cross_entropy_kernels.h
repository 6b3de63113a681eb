// Kernel interface of soft_cross_entropy (internal; no CUDA headers). Tensors are
// contiguous; logits and targets viewed as (N, C, inner).
#pragma once

#include "engine/tensor.h"

// forward: writes loss (0-d), valid (0-d: V, the pixels whose targets sum to non-zero) and
//   lse (N·inner), all in the logits' dtype.
// backward: dx = g (S_p softmax − t) / V, 0 when V = 0; g and valid are 0-d on the device.
#define CBST_DECLARE_SOFT_CE_KERNELS(ns)                                                     \
  namespace cbst::layer_kernels::ns {                                                        \
  void soft_cross_entropy_forward(const Tensor& loss, const Tensor& valid, const Tensor& lse, \
                                  const Tensor& logits, const Tensor& targets);             \
  void soft_cross_entropy_backward(const Tensor& dx, const Tensor& g, const Tensor& logits,  \
                                   const Tensor& targets, const Tensor& lse,                \
                                   const Tensor& valid);                                     \
  }

CBST_DECLARE_SOFT_CE_KERNELS(cpu)
CBST_DECLARE_SOFT_CE_KERNELS(cuda)
#undef CBST_DECLARE_SOFT_CE_KERNELS
