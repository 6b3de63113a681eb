// Convolution on the GPU through cuDNN's legacy convolution API (deprecated in cuDNN 9 but
// shipped; DESIGN.md §3 accepts it), plus two small kernels for the bias.
//
// Algorithm choice: once per (pass, shape, geometry, dtype, TF32, determinism, device) with
// cuDNN's heuristics (cudnnGet*Algorithm_v7), cached for the life of the process. A candidate
// is kept only if its status is SUCCESS, it is deterministic when deterministic() is on, it
// does not need tensor cores when TF32 is off, and its workspace size can be queried with the
// math type we will run it with. Math type: CUDNN_TENSOR_OP_MATH (TF32) when tf32_enabled()
// and the data is f32, else CUDNN_FMA_MATH (f32) or CUDNN_DEFAULT_MATH (f64); bf16 data
// (x, w, y all CUDNN_DATA_BFLOAT16, compute type CUDNN_DATA_FLOAT: f32 accumulation) always
// runs with CUDNN_TENSOR_OP_MATH, on tensor cores. The workspace
// comes from the context's reusable buffer (cuda_workspace), which the caching allocator backs.
#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstdio>
#include <map>
#include <mutex>
#include <vector>

#include "engine/cuda/context.h"
#include "engine/cuda_context.h"
#include "layers/conv_backend.h"

namespace cbst::conv_detail {

namespace {

// ---- descriptors (RAII)

cudnnDataType_t cudnn_dtype(DType t) {
  switch (t) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::f64: return CUDNN_DATA_DOUBLE;
    case DType::bf16: return CUDNN_DATA_BFLOAT16;
    default: CBST_THROW("cuDNN convolution: unsupported dtype ", dtype_name(t));
  }
}

// The convolution descriptor's compute type: bf16 data accumulates in f32.
cudnnDataType_t cudnn_compute_dtype(DType t) {
  return t == DType::bf16 ? CUDNN_DATA_FLOAT : cudnn_dtype(t);
}

class TensorDesc {
 public:
  explicit TensorDesc(const Tensor& t) {
    CBST_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d_));
    CBST_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d_, CUDNN_TENSOR_NCHW, cudnn_dtype(t.dtype()),
                                                int(t.size(0)), int(t.size(1)), int(t.size(2)),
                                                int(t.size(3))));
  }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d_); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  cudnnTensorDescriptor_t get() const { return d_; }

 private:
  cudnnTensorDescriptor_t d_ = nullptr;
};

class FilterDesc {
 public:
  explicit FilterDesc(const Tensor& w) {
    CBST_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d_));
    CBST_CUDNN_CHECK(cudnnSetFilter4dDescriptor(d_, cudnn_dtype(w.dtype()), CUDNN_TENSOR_NCHW,
                                                int(w.size(0)), int(w.size(1)), int(w.size(2)),
                                                int(w.size(3))));
  }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d_); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
  cudnnFilterDescriptor_t get() const { return d_; }

 private:
  cudnnFilterDescriptor_t d_ = nullptr;
};

class ConvDesc {
 public:
  ConvDesc(const ConvGeometry& g, DType dtype) {
    CBST_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d_));
    CBST_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        d_, int(g.pad), int(g.pad), int(g.stride), int(g.stride), int(g.dilation),
        int(g.dilation), CUDNN_CROSS_CORRELATION, cudnn_compute_dtype(dtype)));
  }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d_); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
  cudnnConvolutionDescriptor_t get() const { return d_; }
  void set_math(cudnnMathType_t m) const { CBST_CUDNN_CHECK(cudnnSetConvolutionMathType(d_, m)); }

 private:
  cudnnConvolutionDescriptor_t d_ = nullptr;
};

// All descriptors of one convolution: x (N, Ci, H, W), w (Co, Ci, kh, kw), y (N, Co, Ho, Wo).
struct ConvDescs {
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  ConvDescs(const Tensor& x_, const Tensor& w_, const Tensor& y_, const ConvGeometry& g)
      : x(x_), y(y_), w(w_), conv(g, x_.dtype()) {}
};

// ---- algorithm cache

enum class Pass : int64_t { forward, backward_data, backward_filter };

struct Choice {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
};

using Key = std::array<int64_t, 17>;

Key make_key(Pass pass, const Tensor& x, const Tensor& w, const ConvGeometry& g) {
  return {int64_t(pass), int64_t(cuda_current_device()), int64_t(x.dtype()),
          x.size(0), x.size(1), x.size(2), x.size(3),
          w.size(0), w.size(1), w.size(2), w.size(3),
          g.stride, g.pad, g.dilation,
          int64_t(tf32_enabled()), int64_t(deterministic()), 0};
}

std::mutex g_cache_mutex;
std::map<Key, Choice> g_cache;

cudnnMathType_t wanted_math(DType dtype) {
  if (dtype == DType::f64) return CUDNN_DEFAULT_MATH;
  // bf16 is what tensor cores take natively; the TF32 switch concerns f32 data only.
  if (dtype == DType::bf16) return CUDNN_TENSOR_OP_MATH;
  return tf32_enabled() ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
}

bool uses_tensor_cores(cudnnMathType_t m) {
  return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// Picks the first acceptable heuristic result. `workspace_of(algo)` returns the workspace
// size with the descriptor's current math type, or false when cuDNN refuses the combination.
template <class Perf, class WorkspaceFn>
Choice pick(const char* what, const std::vector<Perf>& perfs, const ConvDescs& d, DType dtype,
            WorkspaceFn workspace_of) {
  const cudnnMathType_t want = wanted_math(dtype);
  for (const Perf& p : perfs) {
    if (p.status != CUDNN_STATUS_SUCCESS) continue;
    if (deterministic() && p.determinism != CUDNN_DETERMINISTIC) continue;
    if (want != CUDNN_TENSOR_OP_MATH && uses_tensor_cores(p.mathType)) continue;
    // With TF32 on, run the algorithm with the math type cuDNN ranked it under.
    const cudnnMathType_t math = want == CUDNN_TENSOR_OP_MATH ? p.mathType : want;
    d.conv.set_math(math);
    size_t bytes = 0;
    if (!workspace_of(int(p.algo), &bytes)) continue;
    if (std::getenv("CBST_LOG_CUDNN"))
      std::fprintf(stderr, "cbst: cuDNN %s algo %d math %d workspace %zu bytes\n", what,
                   int(p.algo), int(math), bytes);
    return {int(p.algo), math, bytes};
  }
  CBST_THROW("conv2d: cuDNN offered no usable ", what, " algorithm (deterministic=",
             deterministic(), ", tf32=", tf32_enabled(), ")");
}

Choice choose(Pass pass, const ConvDescs& d, const Tensor& x, const Tensor& w,
              const ConvGeometry& g) {
  const Key key = make_key(pass, x, w, g);
  {
    std::lock_guard<std::mutex> lock(g_cache_mutex);
    auto it = g_cache.find(key);
    if (it != g_cache.end()) return it->second;
  }
  cudnnHandle_t h = cudnn_handle();
  d.conv.set_math(wanted_math(x.dtype()));
  Choice c;
  int count = 0, returned = 0;
  if (pass == Pass::forward) {
    CBST_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &count));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perfs(static_cast<size_t>(count));
    CBST_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
        h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), count, &returned, perfs.data()));
    perfs.resize(size_t(returned));
    c = pick("forward", perfs, d, x.dtype(), [&](int algo, size_t* bytes) {
      return cudnnGetConvolutionForwardWorkspaceSize(h, d.x.get(), d.w.get(), d.conv.get(),
                                                     d.y.get(), cudnnConvolutionFwdAlgo_t(algo),
                                                     bytes) == CUDNN_STATUS_SUCCESS;
    });
  } else if (pass == Pass::backward_data) {
    CBST_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &count));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perfs(static_cast<size_t>(count));
    CBST_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(), count, &returned, perfs.data()));
    perfs.resize(size_t(returned));
    c = pick("backward-data", perfs, d, x.dtype(), [&](int algo, size_t* bytes) {
      return cudnnGetConvolutionBackwardDataWorkspaceSize(
                 h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(),
                 cudnnConvolutionBwdDataAlgo_t(algo), bytes) == CUDNN_STATUS_SUCCESS;
    });
  } else {
    CBST_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &count));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perfs(static_cast<size_t>(count));
    CBST_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(), count, &returned, perfs.data()));
    perfs.resize(size_t(returned));
    c = pick("backward-filter", perfs, d, x.dtype(), [&](int algo, size_t* bytes) {
      return cudnnGetConvolutionBackwardFilterWorkspaceSize(
                 h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(),
                 cudnnConvolutionBwdFilterAlgo_t(algo), bytes) == CUDNN_STATUS_SUCCESS;
    });
  }
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  g_cache[key] = c;
  return c;
}

// cuDNN's alpha/beta scalars have the compute type: double for f64 data, float otherwise.
struct Scalars {
  float f[2] = {1.f, 0.f};
  double d[2] = {1.0, 0.0};
  bool is_double;
  explicit Scalars(DType t) : is_double(t == DType::f64) {}
  const void* one() const { return is_double ? static_cast<const void*>(&d[0]) : &f[0]; }
  const void* zero() const { return is_double ? static_cast<const void*>(&d[1]) : &f[1]; }
};

// ---- bias kernels

// blockIdx.x is the (image, channel) plane and blockIdx.y a slice of it, so no thread divides.
template <class T>
__global__ void add_channel_bias_kernel(T* y, const T* b, int64_t channels, int64_t hw) {
  const int64_t plane = blockIdx.x;
  const T bias = b[plane % channels];
  T* p = y + plane * hw;
  for (int64_t i = int64_t(blockIdx.y) * blockDim.x + threadIdx.x; i < hw;
       i += int64_t(blockDim.x) * gridDim.y)
    p[i] += bias;
}

// One block per channel, walking its planes image by image; fixed reduction order, so the
// result is deterministic.
template <class T>
__global__ void channel_sum_kernel(T* db, const T* dy, int64_t batch, int64_t channels,
                                   int64_t hw) {
  __shared__ double partial[256];
  const int64_t c = blockIdx.x;
  double acc = 0;
  for (int64_t n = 0; n < batch; ++n) {
    const T* p = dy + (n * channels + c) * hw;
    for (int64_t i = threadIdx.x; i < hw; i += blockDim.x) acc += double(p[i]);
  }
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (int(threadIdx.x) < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) db[c] = T(partial[0]);
}

}  // namespace

// ---- the three primitives

void conv_forward_cuda(const Tensor& y, const Tensor& x, const Tensor& w, const ConvGeometry& g) {
  const ConvDescs d(x, w, y, g);
  const Choice c = choose(Pass::forward, d, x, w, g);
  d.conv.set_math(c.math);
  const Scalars s(x.dtype());
  void* ws = c.workspace ? cuda_workspace(c.workspace) : nullptr;
  CBST_CUDNN_CHECK(cudnnConvolutionForward(cudnn_handle(), s.one(), d.x.get(), x.raw_data(),
                                           d.w.get(), w.raw_data(), d.conv.get(),
                                           cudnnConvolutionFwdAlgo_t(c.algo), ws, c.workspace,
                                           s.zero(), d.y.get(), y.raw_data()));
}

void conv_backward_data_cuda(const Tensor& dx, const Tensor& dy, const Tensor& w,
                             const ConvGeometry& g) {
  const ConvDescs d(dx, w, dy, g);
  const Choice c = choose(Pass::backward_data, d, dx, w, g);
  d.conv.set_math(c.math);
  const Scalars s(dy.dtype());
  void* ws = c.workspace ? cuda_workspace(c.workspace) : nullptr;
  CBST_CUDNN_CHECK(cudnnConvolutionBackwardData(
      cudnn_handle(), s.one(), d.w.get(), w.raw_data(), d.y.get(), dy.raw_data(), d.conv.get(),
      cudnnConvolutionBwdDataAlgo_t(c.algo), ws, c.workspace, s.zero(), d.x.get(),
      dx.raw_data()));
}

void conv_backward_filter_cuda(const Tensor& dw, const Tensor& dy, const Tensor& x,
                               const ConvGeometry& g) {
  const ConvDescs d(x, dw, dy, g);
  const Choice c = choose(Pass::backward_filter, d, x, dw, g);
  d.conv.set_math(c.math);
  const Scalars s(dy.dtype());
  void* ws = c.workspace ? cuda_workspace(c.workspace) : nullptr;
  CBST_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
      cudnn_handle(), s.one(), d.x.get(), x.raw_data(), d.y.get(), dy.raw_data(), d.conv.get(),
      cudnnConvolutionBwdFilterAlgo_t(c.algo), ws, c.workspace, s.zero(), d.w.get(),
      dw.raw_data()));
}

void add_channel_bias_cuda(const Tensor& y, const Tensor& b) {
  const int64_t planes = y.size(0) * y.size(1), hw = y.size(2) * y.size(3);
  if (planes == 0 || hw == 0) return;
  const dim3 grid(unsigned(planes), unsigned(std::min<int64_t>(cuda_blocks(hw), 64)));
  if (y.dtype() == DType::f32)
    add_channel_bias_kernel<<<grid, 256, 0, cuda_stream()>>>(y.data<float>(), b.data<float>(),
                                                             y.size(1), hw);
  else
    add_channel_bias_kernel<<<grid, 256, 0, cuda_stream()>>>(y.data<double>(), b.data<double>(),
                                                             y.size(1), hw);
  CBST_CUDA_LAUNCH_CHECK();
}

void channel_sum_cuda(const Tensor& db, const Tensor& dy) {
  const int64_t c = dy.size(1), hw = dy.size(2) * dy.size(3);
  if (c == 0) return;
  if (dy.dtype() == DType::f32)
    channel_sum_kernel<<<unsigned(c), 256, 0, cuda_stream()>>>(db.data<float>(),
                                                               dy.data<float>(), dy.size(0), c, hw);
  else
    channel_sum_kernel<<<unsigned(c), 256, 0, cuda_stream()>>>(db.data<double>(),
                                                               dy.data<double>(), dy.size(0), c, hw);
  CBST_CUDA_LAUNCH_CHECK();
}

}  // namespace cbst::conv_detail
