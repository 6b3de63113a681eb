// Internal: the convolution and batch-norm kernels behind layers/conv2d.h,
// layers/conv_transpose2d.h and layers/batch_norm2d.h. Free of CUDA headers; the _cuda
// functions exist only in builds with CUDA (front-ends guard calls with CBST_WITH_CUDA).
//
// Convolution is expressed by three primitives on one geometry, which is all conv2d and
// conv_transpose2d need (a transposed convolution's forward is a convolution's backward-data):
//   forward         y  = x ⋆ w                       y: (N, Co, Ho, Wo)
//   backward_data   dx = ∂(Σ dy·(x ⋆ w))/∂x          dx: (N, Ci, H, W)
//   backward_filter dw = ∂(Σ dy·(x ⋆ w))/∂w          dw: (Co, Ci, kh, kw)
// Each *overwrites* its output (the autograd front-end accumulates). All tensors contiguous,
// one dtype, one device. The dtype is f32 or f64, or bf16 for mixed precision: bf16
// operands, products and sums in f32, the output rounded once to bf16 (cuDNN's
// PSEUDO_BFLOAT16 configuration; the CPU widens to f32, runs the f32 kernel and rounds).
// Bias is added / reduced separately, in f32 for bf16 convolutions (layers/conv2d.h).
#pragma once

#include <cstdint>

#include "engine/dispatch.h"
#include "engine/tensor.h"

// CBST_CONV_DISPATCH(op, device, fn, args...): calls conv_detail::fn_cuda or fn_cpu. Without
// the CUDA backend a CUDA tensor gets the "not built with CUDA" error naming the op.
#if CBST_WITH_CUDA
#define CBST_CONV_DISPATCH(op, device, fn, ...)      \
  do {                                               \
    if ((device).is_cuda()) {                        \
      ::cbst::cuda_op_begin(device);                 \
      ::cbst::conv_detail::fn##_cuda(__VA_ARGS__);   \
      ::cbst::cuda_op_end(op);                       \
    } else {                                         \
      ::cbst::conv_detail::fn##_cpu(__VA_ARGS__);    \
    }                                                \
  } while (0)
#else
#define CBST_CONV_DISPATCH(op, device, fn, ...)                  \
  do {                                                           \
    if ((device).is_cuda()) ::cbst::throw_no_cuda_build(op);     \
    ::cbst::conv_detail::fn##_cpu(__VA_ARGS__);                  \
  } while (0)
#endif

namespace cbst::conv_detail {

struct ConvGeometry {
  int64_t stride = 1;
  int64_t pad = 0;
  int64_t dilation = 1;
};

// The dtype a convolution front-end returns: f32 for bf16 operands (mixed precision), else
// the operands' dtype.
inline DType conv_output_dtype(DType operands) {
  return operands == DType::bf16 ? DType::f32 : operands;
}

// Output extent of a convolution along one axis.
inline int64_t conv_out_size(int64_t in, int64_t kernel, const ConvGeometry& g) {
  return (in + 2 * g.pad - g.dilation * (kernel - 1) - 1) / g.stride + 1;
}

// ---- CPU (layers/conv2d_cpu.cpp): im2col + kern::cpu::gemm
void conv_forward_cpu(const Tensor& y, const Tensor& x, const Tensor& w, const ConvGeometry& g);
void conv_backward_data_cpu(const Tensor& dx, const Tensor& dy, const Tensor& w,
                            const ConvGeometry& g);
void conv_backward_filter_cpu(const Tensor& dw, const Tensor& dy, const Tensor& x,
                              const ConvGeometry& g);
// How many CPU backward-filter calls ran with each thread owning a block of dW's columns
// (layers/conv2d_cpu.cpp), for tests that must know the path they check was taken.
int64_t owned_filter_block_count();
void add_channel_bias_cpu(const Tensor& y, const Tensor& b);   // y: (N, C, H, W) += b: (C)
void channel_sum_cpu(const Tensor& db, const Tensor& dy);      // db: (C) = Σ_{n,h,w} dy

// ---- CUDA (layers/conv2d_cuda.cu): cuDNN, algorithm chosen once per shape and cached
void conv_forward_cuda(const Tensor& y, const Tensor& x, const Tensor& w, const ConvGeometry& g);
void conv_backward_data_cuda(const Tensor& dx, const Tensor& dy, const Tensor& w,
                             const ConvGeometry& g);
void conv_backward_filter_cuda(const Tensor& dw, const Tensor& dy, const Tensor& x,
                               const ConvGeometry& g);
void add_channel_bias_cuda(const Tensor& y, const Tensor& b);
void channel_sum_cuda(const Tensor& db, const Tensor& dy);

// ---- batch norm, training statistics (layers/batch_norm2d_cpu.cpp, batch_norm2d_cuda.cu)
// Forward with batch statistics: writes y, save_mean (C), save_invstd (C) = 1/√(var_b + eps)
// and, when defined, updates running_mean/running_var in place (momentum, unbiased var).
// gamma/beta are always defined here (the front-end passes ones/zeros when not affine).
void batch_norm_train_forward_cpu(const Tensor& y, const Tensor& save_mean,
                                  const Tensor& save_invstd, const Tensor& x,
                                  const Tensor& gamma, const Tensor& beta,
                                  const Tensor& running_mean, const Tensor& running_var,
                                  double momentum, double eps);
void batch_norm_train_backward_cpu(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                                   const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                   const Tensor& save_mean, const Tensor& save_invstd,
                                   double eps);  // eps: cuDNN wants it; the CPU uses invstd
// Forward with given statistics: y = (x − mean)·invstd·γ + β (eval and frozen modes).
void batch_norm_eval_forward_cpu(const Tensor& y, const Tensor& x, const Tensor& gamma,
                                 const Tensor& beta, const Tensor& running_mean,
                                 const Tensor& running_var, double eps);

void batch_norm_train_forward_cuda(const Tensor& y, const Tensor& save_mean,
                                   const Tensor& save_invstd, const Tensor& x,
                                   const Tensor& gamma, const Tensor& beta,
                                   const Tensor& running_mean, const Tensor& running_var,
                                   double momentum, double eps);
void batch_norm_train_backward_cuda(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                                    const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                    const Tensor& save_mean, const Tensor& save_invstd,
                                    double eps);
void batch_norm_eval_forward_cuda(const Tensor& y, const Tensor& x, const Tensor& gamma,
                                  const Tensor& beta, const Tensor& running_mean,
                                  const Tensor& running_var, double eps);

}  // namespace cbst::conv_detail
