// Kernel interface of dropout (internal; no CUDA headers). Contiguous tensors; element i
// uses mask entry i / group (group = 1 element-wise, H·W channel-wise); mask is u8 of
// numel / group entries.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

#define CBST_DECLARE_DROPOUT_KERNELS(ns)                                                     \
  namespace cbst::layer_kernels::ns {                                                        \
  void dropout_forward(const Tensor& y, const Tensor& mask, const Tensor& x, double p,        \
                       int64_t group, uint64_t seed, uint64_t offset);                       \
  void dropout_backward(const Tensor& dx, const Tensor& dy, const Tensor& mask, double p,     \
                        int64_t group);                                                      \
  }

CBST_DECLARE_DROPOUT_KERNELS(cpu)
CBST_DECLARE_DROPOUT_KERNELS(cuda)
#undef CBST_DECLARE_DROPOUT_KERNELS
