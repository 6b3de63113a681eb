// The deterministic reduction shared by the cross-entropy kernels (internal, CUDA only): one
// block of kReduceThreads sums per-pixel terms and weights, thread j taking elements j,
// j + blockDim, … in order, then a shared-memory tree; writes Σ term / Σ weight (0 when the
// weights sum to 0) and Σ weight. No float atomics, so the result is bit-reproducible.
#pragma once

#include <cstdint>

namespace cbst::layer_kernels::cuda {

constexpr int kReduceThreads = 1024;

template <class T>
__global__ void weighted_mean_reduce_kernel(T* mean, T* weight_sum, const double* term,
                                            const double* weight, int64_t pixels) {
  __shared__ double s_term[kReduceThreads];
  __shared__ double s_weight[kReduceThreads];
  double a = 0.0, b = 0.0;
  for (int64_t p = threadIdx.x; p < pixels; p += blockDim.x) {
    a += term[p];
    b += weight[p];
  }
  s_term[threadIdx.x] = a;
  s_weight[threadIdx.x] = b;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (int(threadIdx.x) < stride) {
      s_term[threadIdx.x] += s_term[threadIdx.x + stride];
      s_weight[threadIdx.x] += s_weight[threadIdx.x + stride];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const double total = s_weight[0];
    *mean = T(total != 0.0 ? s_term[0] / total : 0.0);
    *weight_sum = T(total);
  }
}

}  // namespace cbst::layer_kernels::cuda
