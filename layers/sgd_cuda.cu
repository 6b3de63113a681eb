// CUDA SGD update (one fused element-wise kernel) and a one-block, fixed-order sum of
// squares for gradient clipping (no float atomics: deterministic).
#include "engine/cuda/context.h"
#include "engine/dispatch.h"
#include "layers/sgd_kernels.h"

namespace cbst::layer_kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kReduceThreads = 1024;

template <class T>
__global__ void sgd_update_kernel(T* p, T* b, const T* g, int64_t n, T lr, T mu, T wd, T gs) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x) {
    const T d = g[i] * gs + wd * p[i];
    if (b) {
      b[i] = mu * b[i] + d;
      p[i] -= lr * b[i];
    } else {
      p[i] -= lr * d;
    }
  }
}

template <class T>
__global__ void sum_of_squares_kernel(double* out, const T* g, int64_t n) {
  __shared__ double partial[kReduceThreads];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += double(g[i]) * double(g[i]);
  partial[threadIdx.x] = s;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (int(threadIdx.x) < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = partial[0];
}

}  // namespace

void sgd_update(const Tensor& param, const Tensor& buf, const Tensor& grad, const SgdUpdate& u) {
  const int64_t n = param.numel();
  CBST_DISPATCH_FLOAT_TYPES(param.dtype(), "sgd_update", [&] {
    sgd_update_kernel<scalar_t><<<cuda_blocks(n, kThreads), kThreads, 0, cuda_stream()>>>(
        param.data<scalar_t>(), buf.defined() ? buf.data<scalar_t>() : nullptr,
        grad.data<scalar_t>(), n, scalar_t(u.lr), scalar_t(u.momentum), scalar_t(u.weight_decay),
        scalar_t(u.grad_scale));
  });
  CBST_CUDA_LAUNCH_CHECK();
}

void sum_of_squares(const Tensor& scratch, int64_t slot, const Tensor& grad) {
  CBST_DISPATCH_FLOAT_TYPES(grad.dtype(), "sum_of_squares", [&] {
    sum_of_squares_kernel<scalar_t><<<1, kReduceThreads, 0, cuda_stream()>>>(
        scratch.data<double>() + slot, grad.data<scalar_t>(), grad.numel());
  });
  CBST_CUDA_LAUNCH_CHECK();
}

}  // namespace cbst::layer_kernels::cuda
