// CUDA row reductions: src (rows, cols) contiguous. One block per row (grid-stride over
// rows); each thread reduces a strided slice, then a shared-memory tree combines them. The
// combination order is fixed, so results are deterministic run to run. Sums accumulate in
// double for f64 and in float for f32.
#include <cfloat>

#include "engine/cuda/context.h"
#include "engine/dispatch.h"
#include "engine/kernel_math.h"

namespace cbst::kern::cuda {

namespace {

constexpr int kThreads = 256;

template <class T> struct Acc { using type = double; };
template <> struct Acc<float> { using type = float; };

template <class T>
__global__ void sum_rows_kernel(T* dst, const T* src, int64_t rows, int64_t cols) {
  using A = typename Acc<T>::type;
  __shared__ A partial[kThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = src + r * cols;
    A acc = A(0);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) acc += A(row[c]);
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int s = kThreads / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
      __syncthreads();
    }
    if (threadIdx.x == 0) dst[r] = T(partial[0]);
    __syncthreads();
  }
}

// Max / min / argmax: each thread keeps (value, first index); ties resolve to the lower index
// and NaN wins (as the CPU kernel), so argmax returns the first maximum.
template <class T>
__device__ bool better(ReduceOp op, T v, int64_t i, T best, int64_t best_i) {
  if (is_nan(best)) return is_nan(v) && i < best_i;
  if (is_nan(v)) return true;
  if (op == ReduceOp::min) return v < best || (v == best && i < best_i);
  return v > best || (v == best && i < best_i);
}

template <class T>
__global__ void extremum_rows_kernel(ReduceOp op, void* dst, const T* src, int64_t rows,
                                     int64_t cols) {
  __shared__ T values[kThreads];
  __shared__ int64_t indices[kThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = src + r * cols;
    T best = row[0];
    int64_t best_i = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
      if (better(op, row[c], c, best, best_i)) {
        best = row[c];
        best_i = c;
      }
    values[threadIdx.x] = best;
    indices[threadIdx.x] = best_i;
    __syncthreads();
    for (int s = kThreads / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s &&
          better(op, values[threadIdx.x + s], indices[threadIdx.x + s], values[threadIdx.x],
                 indices[threadIdx.x])) {
        values[threadIdx.x] = values[threadIdx.x + s];
        indices[threadIdx.x] = indices[threadIdx.x + s];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      if (op == ReduceOp::argmax) static_cast<int64_t*>(dst)[r] = indices[0];
      else static_cast<T*>(dst)[r] = values[0];
    }
    __syncthreads();
  }
}

}  // namespace

void reduce_rows(ReduceOp op, void* dst, const void* src, int64_t rows, int64_t cols,
                 DType dtype) {
  if (rows == 0) return;
  const int blocks = int(rows < 65535 * 4 ? rows : 65535 * 4);
  CBST_DISPATCH_ALL_TYPES(dtype, "reduce", [&] {
    const scalar_t* s = static_cast<const scalar_t*>(src);
    if (op == ReduceOp::sum) {
      sum_rows_kernel<scalar_t><<<blocks, kThreads, 0, cuda_stream()>>>(
          static_cast<scalar_t*>(dst), s, rows, cols);
    } else {
      const ReduceOp kind = op == ReduceOp::min ? ReduceOp::min
                            : op == ReduceOp::argmax ? ReduceOp::argmax : ReduceOp::max;
      extremum_rows_kernel<scalar_t><<<blocks, kThreads, 0, cuda_stream()>>>(kind, dst, s, rows, cols);
    }
  });
  CBST_CUDA_LAUNCH_CHECK();
}

}  // namespace cbst::kern::cuda
