// Kernel interface of bilinear upsampling (internal; no CUDA headers).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace cbst::layer_kernels {

// The taps of one axis: output index i reads input i0[i] with weight l0[i] and i1[i] with
// weight l1[i]. The gather form lists, for input index k, the pairs (output index, weight)
// in increasing output order: entries gather_begin[k] .. gather_begin[k + 1] − 1.
struct BilinearAxis {
  std::vector<int64_t> i0, i1;
  std::vector<double> l0, l1;
  std::vector<int64_t> gather_begin, gather_index;
  std::vector<double> gather_weight;
  bool operator==(const BilinearAxis&) const = default;
};

// scale: torch's per-axis scale (input/output, or 1/scale_factor); ignored with align_corners.
BilinearAxis bilinear_axis(int64_t input, int64_t output, bool align_corners, double scale);

}  // namespace cbst::layer_kernels

#define CBST_DECLARE_UPSAMPLE_KERNELS(ns)                                                   \
  namespace cbst::layer_kernels::ns {                                                       \
  void upsample_bilinear_forward(const Tensor& y, const Tensor& x, const BilinearAxis& rows, \
                                 const BilinearAxis& cols);                                 \
  void upsample_bilinear_backward(const Tensor& dx, const Tensor& dy,                       \
                                  const BilinearAxis& rows, const BilinearAxis& cols);      \
  }

CBST_DECLARE_UPSAMPLE_KERNELS(cpu)
CBST_DECLARE_UPSAMPLE_KERNELS(cuda)
#undef CBST_DECLARE_UPSAMPLE_KERNELS
