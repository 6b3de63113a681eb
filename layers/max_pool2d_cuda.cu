// CUDA max pooling. Forward: one thread per output. Backward: one thread per *input*
// element, summing dy over the windows that contain it and chose it (gather form), so
// overlapping windows need no atomics and the result is deterministic.
#include "engine/cuda/context.h"
#include "engine/dispatch.h"
#include "layers/max_pool2d_kernels.h"

namespace cbst::layer_kernels::cuda {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void max_pool_forward_kernel(T* y, int64_t* indices, const T* x, int64_t total,
                                        int64_t h, int64_t w, int64_t ho, int64_t wo,
                                        int64_t kernel, int64_t stride, int64_t pad) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(blockDim.x) * gridDim.x) {
    const int64_t j = k % wo, i = (k / wo) % ho, plane = k / (wo * ho);
    const T* xs = x + plane * h * w;
    const int64_t h0 = i * stride - pad, w0 = j * stride - pad;
    const int64_t r0 = h0 > 0 ? h0 : 0, r1 = h0 + kernel < h ? h0 + kernel : h;
    const int64_t c0 = w0 > 0 ? w0 : 0, c1 = w0 + kernel < w ? w0 + kernel : w;
    int64_t best = -1;
    T best_value = 0;
    bool found_nan = false;
    for (int64_t r = r0; r < r1 && !found_nan; ++r)
      for (int64_t c = c0; c < c1; ++c) {
        const T v = xs[r * w + c];
        if (best < 0 || v > best_value || v != v) {
          best = r * w + c;
          best_value = v;
          if (v != v) {
            found_nan = true;
            break;
          }
        }
      }
    y[k] = best_value;
    indices[k] = best;
  }
}

template <class T>
__global__ void max_pool_backward_kernel(T* dx, const T* dy, const int64_t* indices,
                                         int64_t total, int64_t h, int64_t w, int64_t ho,
                                         int64_t wo, int64_t kernel, int64_t stride, int64_t pad) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(blockDim.x) * gridDim.x) {
    const int64_t c = k % w, r = (k / w) % h, plane = k / (w * h);
    // Windows i with i·s − pad ≤ r < i·s − pad + kernel.
    const int64_t i0 = r + pad < kernel ? 0 : (r + pad - kernel) / stride + 1;
    const int64_t i1 = min((r + pad) / stride + 1, ho);
    const int64_t j0 = c + pad < kernel ? 0 : (c + pad - kernel) / stride + 1;
    const int64_t j1 = min((c + pad) / stride + 1, wo);
    const int64_t target = r * w + c;
    const int64_t base = plane * ho * wo;
    T sum = 0;
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = j0; j < j1; ++j)
        if (indices[base + i * wo + j] == target) sum += dy[base + i * wo + j];
    dx[k] = sum;
  }
}

}  // namespace

void max_pool2d_forward(const Tensor& y, const Tensor& indices, const Tensor& x,
                        const MaxPool2dOptions& o) {
  const int64_t total = y.numel();
  CBST_DISPATCH_FLOAT_TYPES(x.dtype(), "max_pool2d", [&] {
    max_pool_forward_kernel<scalar_t><<<cuda_blocks(total, kThreads), kThreads, 0, cuda_stream()>>>(
        y.data<scalar_t>(), indices.data<int64_t>(), x.data<scalar_t>(), total, x.size(2),
        x.size(3), y.size(2), y.size(3), o.kernel, o.stride, o.pad);
  });
  CBST_CUDA_LAUNCH_CHECK();
}

void max_pool2d_backward(const Tensor& dx, const Tensor& dy, const Tensor& indices,
                         const MaxPool2dOptions& o) {
  const int64_t total = dx.numel();
  CBST_DISPATCH_FLOAT_TYPES(dx.dtype(), "max_pool2d_backward", [&] {
    max_pool_backward_kernel<scalar_t><<<cuda_blocks(total, kThreads), kThreads, 0, cuda_stream()>>>(
        dx.data<scalar_t>(), dy.data<scalar_t>(), indices.data<int64_t>(), total, dx.size(2),
        dx.size(3), dy.size(2), dy.size(3), o.kernel, o.stride, o.pad);
  });
  CBST_CUDA_LAUNCH_CHECK();
}

}  // namespace cbst::layer_kernels::cuda
