// Kernel interface of max_pool2d (internal; no CUDA headers). Contiguous NCHW tensors;
// `indices` is i64 with y's shape. Options are already normalised (stride > 0).
#pragma once

#include "engine/tensor.h"
#include "layers/max_pool2d.h"

#define CBST_DECLARE_MAX_POOL_KERNELS(ns)                                                     \
  namespace cbst::layer_kernels::ns {                                                         \
  void max_pool2d_forward(const Tensor& y, const Tensor& indices, const Tensor& x,            \
                          const MaxPool2dOptions& o);                                         \
  void max_pool2d_backward(const Tensor& dx, const Tensor& dy, const Tensor& indices,         \
                           const MaxPool2dOptions& o);                                        \
  }

CBST_DECLARE_MAX_POOL_KERNELS(cpu)
CBST_DECLARE_MAX_POOL_KERNELS(cuda)
#undef CBST_DECLARE_MAX_POOL_KERNELS
