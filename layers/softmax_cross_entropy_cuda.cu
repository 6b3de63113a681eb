// CUDA softmax cross-entropy. Forward: one thread per pixel writes lse, w·ℓ and w into
// per-pixel buffers (double), then one block reduces them in a fixed tree order: no float
// atomics, bit-reproducible. The only atomic is an integer atomicMin on the index of the
// first bad label (deterministic). Backward: one thread per logit.
#include "engine/cuda/context.h"
#include "engine/dispatch.h"
#include "layers/cross_entropy_reduce.cuh"
#include "layers/softmax_cross_entropy_kernels.h"

namespace cbst::layer_kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr unsigned long long kNoBadPixel = ~0ull;

template <class L>
__device__ __forceinline__ int64_t label_at(const void* labels, int64_t p) {
  return int64_t(static_cast<const L*>(labels)[p]);
}

template <class L, class T>
__global__ void ce_pixel_kernel(T* lse, double* term, double* weight, unsigned long long* bad_pixel,
                                const T* x, const void* labels, const T* w, int64_t pixels,
                                int64_t classes, int64_t inner, int64_t ignore_index) {
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < pixels;
       p += int64_t(blockDim.x) * gridDim.x) {
    const T* xs = x + (p / inner) * classes * inner + p % inner;
    T m = xs[0];
    for (int64_t c = 1; c < classes; ++c) m = max(m, xs[c * inner]);
    T total = 0;
    for (int64_t c = 0; c < classes; ++c) total += exp(xs[c * inner] - m);
    const T l = m + log(total);
    lse[p] = l;
    const int64_t label = label_at<L>(labels, p);
    term[p] = 0.0;
    weight[p] = 0.0;
    if (label == ignore_index) continue;
    if (label < 0 || label >= classes) {
      atomicMin(bad_pixel, (unsigned long long)p);
      continue;
    }
    const double wy = w ? double(w[label]) : 1.0;
    term[p] = wy * double(l - xs[label * inner]);
    weight[p] = wy;
  }
}

template <class L, class T>
__global__ void ce_backward_kernel(T* dx, const T* g, const T* x, const void* labels, const T* w,
                                   const T* lse, const T* weight_sum, int64_t total_elems,
                                   int64_t classes, int64_t inner, int64_t ignore_index) {
  const T total = *weight_sum;
  const T scale = total != T(0) ? *g / total : T(0);
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total_elems;
       k += int64_t(blockDim.x) * gridDim.x) {
    const int64_t i = k % inner;
    const int64_t c = (k / inner) % classes;
    const int64_t n = k / (inner * classes);
    const int64_t p = n * inner + i;
    const int64_t label = label_at<L>(labels, p);
    if (label == ignore_index || scale == T(0)) {
      dx[k] = 0;
      continue;
    }
    const T s = scale * (w ? w[label] : T(1));
    dx[k] = s * (exp(x[k] - lse[p]) - (c == label ? T(1) : T(0)));
  }
}

// Runs body<L>() with L the label element type.
template <class F>
void dispatch_labels(DType dtype, F body) {
  switch (dtype) {
    case DType::u8: body.template operator()<uint8_t>(); break;
    case DType::i32: body.template operator()<int32_t>(); break;
    case DType::i64: body.template operator()<int64_t>(); break;
    default: CBST_THROW("softmax_cross_entropy: unsupported label dtype ", dtype_name(dtype));
  }
}

}  // namespace

int64_t cross_entropy_forward(const Tensor& loss, const Tensor& weight_sum, const Tensor& lse,
                              const Tensor& logits, const Tensor& labels, const Tensor& weights,
                              int64_t ignore_index) {
  const int64_t n = logits.size(0), classes = logits.size(1);
  const int64_t pixels = labels.numel();
  const int64_t inner = pixels / n;
  const Device dev = logits.device();
  Tensor term = Tensor::empty({pixels}, DType::f64, dev);
  Tensor weight = Tensor::empty({pixels}, DType::f64, dev);
  Tensor bad = Tensor::full({}, 0, DType::i64, dev);
  auto* bad_pixel = static_cast<unsigned long long*>(bad.raw_data());
  CBST_CUDA_CHECK(cudaMemsetAsync(bad_pixel, 0xff, sizeof(unsigned long long), cuda_stream()));
  CBST_DISPATCH_FLOAT_TYPES(logits.dtype(), "softmax_cross_entropy", [&] {
    const scalar_t* w = weights.defined() ? weights.data<scalar_t>() : nullptr;
    dispatch_labels(labels.dtype(), [&]<class L>() {
      ce_pixel_kernel<L, scalar_t><<<cuda_blocks(pixels, kThreads), kThreads, 0, cuda_stream()>>>(
          lse.data<scalar_t>(), term.data<double>(), weight.data<double>(), bad_pixel,
          logits.data<scalar_t>(), labels.raw_data(), w, pixels, classes, inner, ignore_index);
      CBST_CUDA_LAUNCH_CHECK();
    });
    weighted_mean_reduce_kernel<scalar_t><<<1, kReduceThreads, 0, cuda_stream()>>>(
        loss.data<scalar_t>(), weight_sum.data<scalar_t>(), term.data<double>(),
        weight.data<double>(), pixels);
    CBST_CUDA_LAUNCH_CHECK();
  });
  // The range check needs the answer on the host: one small copy and a synchronisation.
  unsigned long long first_bad = kNoBadPixel;
  CBST_CUDA_CHECK(cudaMemcpyAsync(&first_bad, bad_pixel, sizeof(first_bad), cudaMemcpyDeviceToHost,
                                  cuda_stream()));
  CBST_CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
  if (first_bad == kNoBadPixel) return kAllLabelsValid;
  return labels.reshape({pixels}).narrow(0, int64_t(first_bad), 1).to(Device::cpu())
      .to(DType::i64).item<int64_t>();
}

void cross_entropy_backward(const Tensor& dx, const Tensor& g, const Tensor& logits,
                            const Tensor& labels, const Tensor& weights, const Tensor& lse,
                            const Tensor& weight_sum, int64_t ignore_index) {
  const int64_t n = logits.size(0), classes = logits.size(1);
  const int64_t inner = labels.numel() / n;
  const int64_t total = logits.numel();
  CBST_DISPATCH_FLOAT_TYPES(logits.dtype(), "softmax_cross_entropy_backward", [&] {
    const scalar_t* w = weights.defined() ? weights.data<scalar_t>() : nullptr;
    dispatch_labels(labels.dtype(), [&]<class L>() {
      ce_backward_kernel<L, scalar_t><<<cuda_blocks(total, kThreads), kThreads, 0, cuda_stream()>>>(
          dx.data<scalar_t>(), g.data<scalar_t>(), logits.data<scalar_t>(), labels.raw_data(), w,
          lse.data<scalar_t>(), weight_sum.data<scalar_t>(), total, classes, inner, ignore_index);
      CBST_CUDA_LAUNCH_CHECK();
    });
  });
}

}  // namespace cbst::layer_kernels::cuda
