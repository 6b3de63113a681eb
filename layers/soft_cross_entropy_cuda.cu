// CUDA soft-target cross-entropy. Forward: one thread per pixel writes lse, ℓ_p and whether
// the pixel counts into per-pixel buffers (double), then one block reduces them in a fixed
// tree order: no float atomics, bit-reproducible. Backward: one thread per pixel.
#include "engine/cuda/context.h"
#include "engine/dispatch.h"
#include "layers/cross_entropy_reduce.cuh"
#include "layers/soft_cross_entropy_kernels.h"

namespace cbst::layer_kernels::cuda {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void soft_ce_pixel_kernel(T* lse, double* term, double* counted, const T* x,
                                     const T* t, int64_t pixels, int64_t classes, int64_t inner) {
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < pixels;
       p += int64_t(blockDim.x) * gridDim.x) {
    const int64_t base = (p / inner) * classes * inner + p % inner;
    T m = x[base];
    for (int64_t c = 1; c < classes; ++c) m = max(m, x[base + c * inner]);
    T total = 0;
    for (int64_t c = 0; c < classes; ++c) total += exp(x[base + c * inner] - m);
    const T l = m + log(total);
    lse[p] = l;
    double s = 0.0, e = 0.0;
    for (int64_t c = 0; c < classes; ++c) {
      const double tc = double(t[base + c * inner]);
      s += tc;
      if (tc != 0.0) e += tc * double(l - x[base + c * inner]);
    }
    term[p] = e;
    counted[p] = s != 0.0 ? 1.0 : 0.0;
  }
}

template <class T>
__global__ void soft_ce_backward_kernel(T* dx, const T* g, const T* x, const T* t, const T* lse,
                                        const T* valid, int64_t pixels, int64_t classes,
                                        int64_t inner) {
  const T v = *valid;
  const T scale = v != T(0) ? *g / v : T(0);
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < pixels;
       p += int64_t(blockDim.x) * gridDim.x) {
    const int64_t base = (p / inner) * classes * inner + p % inner;
    T s = 0;
    for (int64_t c = 0; c < classes; ++c) s += t[base + c * inner];
    for (int64_t c = 0; c < classes; ++c) {
      const int64_t k = base + c * inner;
      dx[k] = scale * (s * exp(x[k] - lse[p]) - t[k]);
    }
  }
}

}  // namespace

void soft_cross_entropy_forward(const Tensor& loss, const Tensor& valid, const Tensor& lse,
                                const Tensor& logits, const Tensor& targets) {
  const int64_t n = logits.size(0), classes = logits.size(1);
  const int64_t inner = logits.numel() / (n * classes);
  const int64_t pixels = n * inner;
  const Device dev = logits.device();
  Tensor term = Tensor::empty({pixels}, DType::f64, dev);
  Tensor counted = Tensor::empty({pixels}, DType::f64, dev);
  CBST_DISPATCH_FLOAT_TYPES(logits.dtype(), "soft_cross_entropy", [&] {
    soft_ce_pixel_kernel<scalar_t><<<cuda_blocks(pixels, kThreads), kThreads, 0, cuda_stream()>>>(
        lse.data<scalar_t>(), term.data<double>(), counted.data<double>(), logits.data<scalar_t>(),
        targets.data<scalar_t>(), pixels, classes, inner);
    CBST_CUDA_LAUNCH_CHECK();
    weighted_mean_reduce_kernel<scalar_t><<<1, kReduceThreads, 0, cuda_stream()>>>(
        loss.data<scalar_t>(), valid.data<scalar_t>(), term.data<double>(), counted.data<double>(),
        pixels);
    CBST_CUDA_LAUNCH_CHECK();
  });
}

void soft_cross_entropy_backward(const Tensor& dx, const Tensor& g, const Tensor& logits,
                                 const Tensor& targets, const Tensor& lse, const Tensor& valid) {
  const int64_t n = logits.size(0), classes = logits.size(1);
  const int64_t inner = logits.numel() / (n * classes);
  const int64_t pixels = n * inner;
  CBST_DISPATCH_FLOAT_TYPES(logits.dtype(), "soft_cross_entropy_backward", [&] {
    soft_ce_backward_kernel<scalar_t><<<cuda_blocks(pixels, kThreads), kThreads, 0, cuda_stream()>>>(
        dx.data<scalar_t>(), g.data<scalar_t>(), logits.data<scalar_t>(), targets.data<scalar_t>(),
        lse.data<scalar_t>(), valid.data<scalar_t>(), pixels, classes, inner);
    CBST_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace cbst::layer_kernels::cuda
