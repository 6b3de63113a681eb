// CUDA kernels of the element-wise basic ops. Semantics come from engine/kernel_math.h,
// shared with the CPU kernels. Grid-stride loops, int64 indices, one stream per device.
#include "engine/cuda/context.h"
#include "engine/dispatch.h"
#include "engine/kernel_math.h"

namespace cbst::kern::cuda {

namespace {

constexpr int kThreads = 256;

#define CBST_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(blockDim.x) * gridDim.x)

template <class To, class From>
__global__ void copy_kernel(TensorArg dst, TensorArg src, int64_t n, bool contiguous) {
  To* d = static_cast<To*>(dst.data);
  const From* s = static_cast<const From*>(src.data);
  CBST_GRID_STRIDE(i, n) {
    if (contiguous) d[i] = convert_element<To>(s[i]);
    else d[offset_of(dst, i)] = convert_element<To>(s[offset_of(src, i)]);
  }
}

template <class T>
__global__ void fill_kernel(TensorArg dst, int64_t n, T value, bool contiguous) {
  T* d = static_cast<T*>(dst.data);
  CBST_GRID_STRIDE(i, n) { d[contiguous ? i : offset_of(dst, i)] = value; }
}

template <class T>
__global__ void unary_kernel(UnaryOp op, TensorArg dst, TensorArg src, int64_t n, double scalar,
                             bool contiguous) {
  const T* s = static_cast<const T*>(src.data);
  if (is_comparison(op)) {
    uint8_t* d = static_cast<uint8_t*>(dst.data);
    CBST_GRID_STRIDE(i, n) { d[offset_of(dst, i)] = compare_scalar(op, s[offset_of(src, i)], scalar); }
    return;
  }
  T* d = static_cast<T*>(dst.data);
  CBST_GRID_STRIDE(i, n) {
    if (contiguous) d[i] = apply_unary(op, s[i], scalar);
    else d[offset_of(dst, i)] = apply_unary(op, s[offset_of(src, i)], scalar);
  }
}

template <class T>
__global__ void binary_kernel(BinaryOp op, TensorArg dst, TensorArg a, TensorArg b, int64_t n,
                              bool contiguous) {
  const T* pa = static_cast<const T*>(a.data);
  const T* pb = static_cast<const T*>(b.data);
  if (is_comparison(op)) {
    uint8_t* d = static_cast<uint8_t*>(dst.data);
    CBST_GRID_STRIDE(i, n) {
      d[offset_of(dst, i)] = compare(op, pa[offset_of(a, i)], pb[offset_of(b, i)]);
    }
    return;
  }
  T* d = static_cast<T*>(dst.data);
  CBST_GRID_STRIDE(i, n) {
    if (contiguous) d[i] = apply_binary(op, pa[i], pb[i]);
    else d[offset_of(dst, i)] = apply_binary(op, pa[offset_of(a, i)], pb[offset_of(b, i)]);
  }
}

template <class T>
__global__ void where_kernel(TensorArg dst, TensorArg cond, TensorArg a, TensorArg b, int64_t n) {
  const uint8_t* c = static_cast<const uint8_t*>(cond.data);
  const T* pa = static_cast<const T*>(a.data);
  const T* pb = static_cast<const T*>(b.data);
  T* d = static_cast<T*>(dst.data);
  CBST_GRID_STRIDE(i, n) {
    d[offset_of(dst, i)] = c[offset_of(cond, i)] ? pa[offset_of(a, i)] : pb[offset_of(b, i)];
  }
}

enum class RandomKind { uniform, normal, bernoulli };

template <class T>
__global__ void random_kernel(RandomKind kind, T* d, int64_t n, double p0, double p1,
                              uint64_t seed, uint64_t offset) {
  CBST_GRID_STRIDE(i, n) {
    const uint64_t ctr = offset + uint64_t(i);
    double v;
    if (kind == RandomKind::uniform) v = random_uniform(seed, ctr, p0, p1);
    else if (kind == RandomKind::normal) v = random_normal(seed, ctr, p0, p1);
    else v = random_bernoulli(seed, ctr, p0);
    d[i] = T(v);
  }
}

void launch_random(RandomKind kind, const TensorArg& dst, double p0, double p1, uint64_t seed,
                   uint64_t offset) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  CBST_DISPATCH_FLOAT_TYPES(dst.dtype, "random", [&] {
    random_kernel<scalar_t><<<cuda_blocks(n, kThreads), kThreads, 0, cuda_stream()>>>(
        kind, static_cast<scalar_t*>(dst.data), n, p0, p1, seed, offset);
  });
  CBST_CUDA_LAUNCH_CHECK();
}

}  // namespace

void copy(const TensorArg& dst, const TensorArg& src) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  const bool contiguous = dst.contiguous() && src.contiguous();
  if (contiguous && dst.dtype == src.dtype) {
    CBST_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, size_t(n) * dtype_size(dst.dtype),
                                    cudaMemcpyDeviceToDevice, cuda_stream()));
    return;
  }
  CBST_DISPATCH_STORAGE_TYPES(dst.dtype, "copy", [&] {
    using To = scalar_t;
    CBST_DISPATCH_STORAGE_TYPES(src.dtype, "copy", [&] {
      copy_kernel<To, scalar_t><<<cuda_blocks(n, kThreads), kThreads, 0, cuda_stream()>>>(
          dst, src, n, contiguous);
    });
  });
  CBST_CUDA_LAUNCH_CHECK();
}

void fill(const TensorArg& dst, double value) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  CBST_DISPATCH_STORAGE_TYPES(dst.dtype, "fill", [&] {
    fill_kernel<scalar_t><<<cuda_blocks(n, kThreads), kThreads, 0, cuda_stream()>>>(
        dst, n, convert_element<scalar_t>(value), dst.contiguous());
  });
  CBST_CUDA_LAUNCH_CHECK();
}

void unary(UnaryOp op, const TensorArg& dst, const TensorArg& src, double scalar) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  const bool contiguous = dst.contiguous() && src.contiguous();
  CBST_DISPATCH_ALL_TYPES(src.dtype, "unary", [&] {
    unary_kernel<scalar_t><<<cuda_blocks(n, kThreads), kThreads, 0, cuda_stream()>>>(
        op, dst, src, n, scalar, contiguous);
  });
  CBST_CUDA_LAUNCH_CHECK();
}

void binary(BinaryOp op, const TensorArg& dst, const TensorArg& a, const TensorArg& b) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  const bool contiguous = dst.contiguous() && a.contiguous() && b.contiguous();
  CBST_DISPATCH_ALL_TYPES(a.dtype, "binary", [&] {
    binary_kernel<scalar_t><<<cuda_blocks(n, kThreads), kThreads, 0, cuda_stream()>>>(
        op, dst, a, b, n, contiguous);
  });
  CBST_CUDA_LAUNCH_CHECK();
}

void where(const TensorArg& dst, const TensorArg& cond, const TensorArg& a, const TensorArg& b) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  CBST_DISPATCH_ALL_TYPES(a.dtype, "where", [&] {
    where_kernel<scalar_t><<<cuda_blocks(n, kThreads), kThreads, 0, cuda_stream()>>>(
        dst, cond, a, b, n);
  });
  CBST_CUDA_LAUNCH_CHECK();
}

void uniform(const TensorArg& dst, double low, double high, uint64_t seed, uint64_t offset) {
  launch_random(RandomKind::uniform, dst, low, high, seed, offset);
}
void normal(const TensorArg& dst, double mean, double stddev, uint64_t seed, uint64_t offset) {
  launch_random(RandomKind::normal, dst, mean, stddev, seed, offset);
}
void bernoulli(const TensorArg& dst, double p, uint64_t seed, uint64_t offset) {
  launch_random(RandomKind::bernoulli, dst, p, 0.0, seed, offset);
}

}  // namespace cbst::kern::cuda
