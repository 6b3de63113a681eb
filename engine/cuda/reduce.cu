// CUDA row reductions: src (rows, cols) contiguous, dst (rows). Deterministic: how the work is
// split depends on (rows, cols) alone, never on the device or on timing, and every partial
// result is combined in a fixed order. Sums accumulate in double for f64 and the integer
// types and in float for f32.
//
// Three shapes of work:
// - short rows (cols <= 32, e.g. an argmax over classes per pixel): one thread per row;
// - enough long rows to fill the GPU: one block per row (a grid-stride loop over rows);
// - few long rows (a whole-tensor sum has one): each row is cut into `chunks` pieces, one
//   block each, whose partial results (sums in the accumulator's type; values with their
//   column for max/min/argmax) land in a scratch buffer that a second pass reduces like any
//   other rows.
// Within a block each thread keeps four independent accumulators, so four loads are in
// flight per thread, then a shared-memory tree combines the threads.
#include <cfloat>

#include "engine/cuda/context.h"
#include "engine/dispatch.h"
#include "engine/kernel_math.h"

namespace cbst::kern::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kShortRow = 32;       // at most this many columns: one thread per row
constexpr int64_t kBlocksWanted = 1024;  // split long rows until about this many blocks run
constexpr int64_t kMinChunk = 8192;      // but give each block about this many columns or more
// Every piece non-empty: chunks <= cols / kMinChunk and chunks <= kBlocksWanted, so the pieces
// of ⌈cols / chunks⌉ columns reach past the last one's start only if kMinChunk < kBlocksWanted.
static_assert(kMinChunk >= kBlocksWanted, "a row's last piece could be empty");

template <class T> struct Acc { using type = double; };
template <> struct Acc<float> { using type = float; };

// Columns [begin, end) of piece k of a row cut into `chunks` pieces of ⌈cols / chunks⌉.
struct Range {
  int64_t begin, end;
};
__device__ __forceinline__ Range chunk_range(int64_t cols, int64_t chunks, int64_t k) {
  const int64_t len = (cols + chunks - 1) / chunks;
  return {k * len, k * len + len < cols ? k * len + len : cols};
}

// Block b reduces piece b % chunks of row b / chunks into dst[b], accumulating in A. A first
// pass writes its partial sums as A (an int32 row's pieces may leave int32 when its total does
// not); the second reads them and writes T.
template <class T, class Out>
__global__ void sum_pieces_kernel(Out* dst, const T* src, int64_t rows, int64_t cols,
                                  int64_t chunks) {
  using A = typename Acc<T>::type;
  __shared__ A partial[kThreads];
  for (int64_t b = blockIdx.x; b < rows * chunks; b += gridDim.x) {
    const T* row = src + (b / chunks) * cols;
    const auto [begin, end] = chunk_range(cols, chunks, b % chunks);
    A acc[4] = {A(0), A(0), A(0), A(0)};
    int64_t c = begin + threadIdx.x;
    for (; c + 3 * kThreads < end; c += 4 * kThreads) {
#pragma unroll
      for (int u = 0; u < 4; ++u) acc[u] += A(row[c + u * kThreads]);
    }
    for (; c < end; c += kThreads) acc[0] += A(row[c]);
    partial[threadIdx.x] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    __syncthreads();
    for (int s = kThreads / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
      __syncthreads();
    }
    if (threadIdx.x == 0) dst[b] = Out(partial[0]);
    __syncthreads();
  }
}

template <class T>
__global__ void sum_short_rows_kernel(T* dst, const T* src, int64_t rows, int64_t cols) {
  using A = typename Acc<T>::type;
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < rows;
       r += int64_t(blockDim.x) * gridDim.x) {
    A acc = A(0);
    for (int64_t c = 0; c < cols; ++c) acc += A(src[r * cols + c]);
    dst[r] = T(acc);
  }
}

// Max / min / argmax keep (value, column); ties resolve to the lower column and NaN wins (as
// the CPU kernel), so argmax returns the first maximum.
template <class T>
__device__ bool better(ReduceOp op, T v, int64_t i, T best, int64_t best_i) {
  if (is_nan(best)) return is_nan(v) && i < best_i;
  if (is_nan(v)) return true;
  if (op == ReduceOp::min) return v < best || (v == best && i < best_i);
  return v > best || (v == best && i < best_i);
}

// Block b reduces piece b % chunks of row b / chunks into (values[b], indices[b]). The column
// of src[r, c] is c, or src_index[r, c] when the input is a first pass's partial results.
template <class T>
__global__ void extremum_pieces_kernel(ReduceOp op, T* values, int64_t* indices, const T* src,
                                       const int64_t* src_index, int64_t rows, int64_t cols,
                                       int64_t chunks) {
  __shared__ T best_v[kThreads];
  __shared__ int64_t best_i[kThreads];
  for (int64_t b = blockIdx.x; b < rows * chunks; b += gridDim.x) {
    const int64_t r = b / chunks;
    const auto [begin, end] = chunk_range(cols, chunks, b % chunks);
    auto column = [&](int64_t c) { return src_index ? src_index[r * cols + c] : c; };
    T v = src[r * cols + begin];
    int64_t vi = column(begin);
    for (int64_t c = begin + threadIdx.x; c < end; c += kThreads) {
      const T x = src[r * cols + c];
      const int64_t xi = column(c);
      if (better(op, x, xi, v, vi)) {
        v = x;
        vi = xi;
      }
    }
    best_v[threadIdx.x] = v;
    best_i[threadIdx.x] = vi;
    __syncthreads();
    for (int s = kThreads / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s && better(op, best_v[threadIdx.x + s], best_i[threadIdx.x + s],
                                    best_v[threadIdx.x], best_i[threadIdx.x])) {
        best_v[threadIdx.x] = best_v[threadIdx.x + s];
        best_i[threadIdx.x] = best_i[threadIdx.x + s];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      if (values) values[b] = best_v[0];
      if (indices) indices[b] = best_i[0];
    }
    __syncthreads();
  }
}

template <class T>
__global__ void extremum_short_rows_kernel(ReduceOp op, T* values, int64_t* indices,
                                           const T* src, int64_t rows, int64_t cols) {
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < rows;
       r += int64_t(blockDim.x) * gridDim.x) {
    const T* row = src + r * cols;
    T v = row[0];
    int64_t vi = 0;
    for (int64_t c = 1; c < cols; ++c)
      if (better(op, row[c], c, v, vi)) {
        v = row[c];
        vi = c;
      }
    if (values) values[r] = v;
    if (indices) indices[r] = vi;
  }
}

int grid_for(int64_t blocks) { return int(blocks < 65535 * 4 ? blocks : 65535 * 4); }

// How many pieces each row is cut into: 1 unless few rows would leave the GPU idle.
int64_t chunks_for(int64_t rows, int64_t cols) {
  if (rows >= kBlocksWanted || cols < 2 * kMinChunk) return 1;
  const int64_t by_blocks = (kBlocksWanted + rows - 1) / rows;
  const int64_t by_size = cols / kMinChunk;
  return by_blocks < by_size ? by_blocks : by_size;
}

// Scratch memory from the caching allocator, given back when the reduction is queued (the
// stream orders its reuse after these kernels).
class Scratch {
 public:
  Scratch(size_t bytes, const char* what)
      : device_(cuda_current_device()), ptr_(cuda_allocate(bytes, device_, what)) {}
  ~Scratch() { cuda_free(ptr_, device_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <class T> T* as() const { return static_cast<T*>(ptr_); }

 private:
  int device_;
  void* ptr_;
};

template <class T>
void sum_rows(T* dst, const T* src, int64_t rows, int64_t cols) {
  if (cols <= kShortRow) {
    sum_short_rows_kernel<<<cuda_blocks(rows, kThreads), kThreads, 0, cuda_stream()>>>(
        dst, src, rows, cols);
    return;
  }
  const int64_t chunks = chunks_for(rows, cols);
  if (chunks == 1) {
    sum_pieces_kernel<<<grid_for(rows), kThreads, 0, cuda_stream()>>>(dst, src, rows, cols, 1);
    return;
  }
  using A = typename Acc<T>::type;
  const Scratch partial(size_t(rows * chunks) * sizeof(A), "a reduction's partial sums");
  sum_pieces_kernel<<<grid_for(rows * chunks), kThreads, 0, cuda_stream()>>>(
      partial.as<A>(), src, rows, cols, chunks);
  CBST_CUDA_LAUNCH_CHECK();
  sum_pieces_kernel<<<grid_for(rows), kThreads, 0, cuda_stream()>>>(dst, partial.as<A>(), rows,
                                                                    chunks, 1);
}

template <class T>
void extremum_rows(ReduceOp op, void* dst, const T* src, int64_t rows, int64_t cols) {
  T* values = op == ReduceOp::argmax ? nullptr : static_cast<T*>(dst);
  int64_t* indices = op == ReduceOp::argmax ? static_cast<int64_t*>(dst) : nullptr;
  if (cols <= kShortRow) {
    extremum_short_rows_kernel<<<cuda_blocks(rows, kThreads), kThreads, 0, cuda_stream()>>>(
        op, values, indices, src, rows, cols);
    return;
  }
  const int64_t chunks = chunks_for(rows, cols);
  if (chunks == 1) {
    extremum_pieces_kernel<<<grid_for(rows), kThreads, 0, cuda_stream()>>>(
        op, values, indices, src, nullptr, rows, cols, 1);
    return;
  }
  const size_t pieces = size_t(rows * chunks);
  const Scratch partial_v(pieces * sizeof(T), "a reduction's partial results");
  const Scratch partial_i(pieces * sizeof(int64_t), "a reduction's partial results");
  extremum_pieces_kernel<<<grid_for(rows * chunks), kThreads, 0, cuda_stream()>>>(
      op, partial_v.as<T>(), partial_i.as<int64_t>(), src, nullptr, rows, cols, chunks);
  CBST_CUDA_LAUNCH_CHECK();
  extremum_pieces_kernel<<<grid_for(rows), kThreads, 0, cuda_stream()>>>(
      op, values, indices, partial_v.as<T>(), partial_i.as<int64_t>(), rows, chunks, 1);
}

}  // namespace

void reduce_rows(ReduceOp op, void* dst, const void* src, int64_t rows, int64_t cols,
                 DType dtype) {
  if (rows == 0) return;
  CBST_DISPATCH_ALL_TYPES(dtype, "reduce", [&] {
    const scalar_t* s = static_cast<const scalar_t*>(src);
    if (op == ReduceOp::sum) {
      sum_rows(static_cast<scalar_t*>(dst), s, rows, cols);
    } else {
      const ReduceOp kind = op == ReduceOp::min ? ReduceOp::min
                            : op == ReduceOp::argmax ? ReduceOp::argmax : ReduceOp::max;
      extremum_rows(kind, dst, s, rows, cols);
    }
  });
  CBST_CUDA_LAUNCH_CHECK();
}

}  // namespace cbst::kern::cuda
