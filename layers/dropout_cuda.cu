// CUDA dropout: the same Philox counters as the CPU (kern::random_bernoulli), so a given
// generator state yields the same mask on both devices.
#include "engine/cuda/context.h"
#include "engine/dispatch.h"
#include "engine/kernel_math.h"
#include "layers/dropout_kernels.h"

namespace cbst::layer_kernels::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void dropout_mask_kernel(uint8_t* mask, int64_t n, double keep, uint64_t seed,
                                    uint64_t offset) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += int64_t(blockDim.x) * gridDim.x)
    mask[k] = kern::random_bernoulli(seed, offset + uint64_t(k), keep) != 0.0 ? 1 : 0;
}

template <class T>
__global__ void dropout_apply_kernel(T* out, const T* in, const uint8_t* mask, int64_t n,
                                     int64_t group, T scale) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x)
    out[i] = mask[i / group] ? in[i] * scale : T(0);
}

template <class T>
void apply(const Tensor& out, const Tensor& in, const Tensor& mask, double p, int64_t group) {
  const int64_t n = in.numel();
  dropout_apply_kernel<T><<<cuda_blocks(n, kThreads), kThreads, 0, cuda_stream()>>>(
      out.data<T>(), in.data<T>(), mask.data<uint8_t>(), n, group, T(1.0 / (1.0 - p)));
  CBST_CUDA_LAUNCH_CHECK();
}

}  // namespace

void dropout_forward(const Tensor& y, const Tensor& mask, const Tensor& x, double p,
                     int64_t group, uint64_t seed, uint64_t offset) {
  const int64_t entries = mask.numel();
  dropout_mask_kernel<<<cuda_blocks(entries, kThreads), kThreads, 0, cuda_stream()>>>(
      mask.data<uint8_t>(), entries, 1.0 - p, seed, offset);
  CBST_CUDA_LAUNCH_CHECK();
  CBST_DISPATCH_FLOAT_TYPES(x.dtype(), "dropout", [&] { apply<scalar_t>(y, x, mask, p, group); });
}

void dropout_backward(const Tensor& dx, const Tensor& dy, const Tensor& mask, double p,
                      int64_t group) {
  CBST_DISPATCH_FLOAT_TYPES(dy.dtype(), "dropout_backward", [&] { apply<scalar_t>(dx, dy, mask, p, group); });
}

}  // namespace cbst::layer_kernels::cuda
