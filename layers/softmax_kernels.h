// Kernel interface of softmax / log_softmax (internal; no CUDA headers). All tensors are
// contiguous, viewed as (outer = N, C, inner = product of the dims after 1).
#pragma once

#include "engine/tensor.h"

#define CBST_DECLARE_SOFTMAX_KERNELS(ns)                                                  \
  namespace cbst::layer_kernels::ns {                                                     \
  void softmax_forward(const Tensor& y, const Tensor& x, bool log);                       \
  void softmax_backward(const Tensor& dx, const Tensor& dy, const Tensor& y, bool log);   \
  }

CBST_DECLARE_SOFTMAX_KERNELS(cpu)
CBST_DECLARE_SOFTMAX_KERNELS(cuda)
#undef CBST_DECLARE_SOFTMAX_KERNELS
