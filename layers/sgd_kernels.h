// Kernel interface of the SGD update (internal; no CUDA headers). Contiguous tensors.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace cbst::layer_kernels {

struct SgdUpdate {
  double lr = 0.0;            // already multiplied by the group's lr_mult and the schedule
  double momentum = 0.0;
  double weight_decay = 0.0;  // already multiplied by the group's decay_mult
  double grad_scale = 1.0;    // clipping
};

}  // namespace cbst::layer_kernels

// sgd_update: p, buf (undefined when momentum is 0) updated in place from grad.
// sum_of_squares: writes Σ grad² (in double) into scratch[slot] (scratch: f64, same device).
#define CBST_DECLARE_SGD_KERNELS(ns)                                                         \
  namespace cbst::layer_kernels::ns {                                                        \
  void sgd_update(const Tensor& param, const Tensor& buf, const Tensor& grad,                \
                  const SgdUpdate& u);                                                       \
  void sum_of_squares(const Tensor& scratch, int64_t slot, const Tensor& grad);              \
  }

CBST_DECLARE_SGD_KERNELS(cpu)
CBST_DECLARE_SGD_KERNELS(cuda)
#undef CBST_DECLARE_SGD_KERNELS
