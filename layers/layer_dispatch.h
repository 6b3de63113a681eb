// Device dispatch for the layer ops (internal; no CUDA headers).
//
// CBST_LAYER_DISPATCH(op, device, fn, args...) calls layer_kernels::cuda::fn on a CUDA tensor
// and layer_kernels::cpu::fn otherwise. In a build without the CUDA backend a CUDA tensor
// gets the engine's "built without CUDA" error naming the op; never a silent CPU fallback.
// Kernels receive contiguous tensors; the front-ends make them so.
#pragma once

#include "engine/dispatch.h"

#if CBST_WITH_CUDA
#define CBST_LAYER_DISPATCH(op, device, fn, ...)       \
  do {                                                 \
    if ((device).is_cuda()) {                          \
      ::cbst::cuda_op_begin(device);                   \
      ::cbst::layer_kernels::cuda::fn(__VA_ARGS__);    \
      ::cbst::cuda_op_end(op);                         \
    } else {                                           \
      ::cbst::layer_kernels::cpu::fn(__VA_ARGS__);     \
    }                                                  \
  } while (0)
#else
#define CBST_LAYER_DISPATCH(op, device, fn, ...)                  \
  do {                                                            \
    if ((device).is_cuda()) ::cbst::throw_no_cuda_build(op);      \
    ::cbst::layer_kernels::cpu::fn(__VA_ARGS__);                  \
  } while (0)
#endif

