// CUDA runtime context: devices, per-device stream/handles/workspace, and the caching
// allocator. Every op of a device runs on that device's one stream, so a block freed by a
// tensor can be handed to the next allocation at once (stream order protects it).
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/cuda/context.h"
#include "engine/cuda_context.h"
#include "engine/dispatch.h"

namespace cbst {

namespace detail {
void fail_library(const char* library, const char* expr, const std::string& message,
                  const char* file, int line) {
  int device = -1;
  cudaGetDevice(&device);
  throw Error(std::string(library) + " error: " + message + " in `" + expr + "` on cuda:" +
              std::to_string(device) + " [" + file + ":" + std::to_string(line) + "]");
}
}  // namespace detail

namespace {

constexpr int kMaxDevices = 16;

struct DeviceContext {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cudnnHandle_t cudnn = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

// ---- caching allocator
struct DeviceCache {
  std::multimap<size_t, void*> free_blocks;  // size -> block
  std::unordered_map<void*, size_t> live;    // block -> size
  size_t allocated = 0, peak = 0, reserved = 0;
};

std::mutex g_mutex;
DeviceContext g_contexts[kMaxDevices];
DeviceCache g_caches[kMaxDevices];

// Small blocks round to 512 B; large ones to 2 MiB, so that varying crop sizes reuse blocks.
size_t round_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  const size_t q = bytes < (size_t(1) << 20) ? 512 : (size_t(2) << 20);
  return (bytes + q - 1) / q * q;
}

void release_cached_locked(int device) {
  DeviceCache& c = g_caches[device];
  if (c.free_blocks.empty()) return;
  cudaDeviceSynchronize();
  for (auto& [size, ptr] : c.free_blocks) {
    CBST_CUDA_CHECK_LOG(cudaFree(ptr));
    c.reserved -= size;
  }
  c.free_blocks.clear();
}

DeviceContext& context(int device) {
  CBST_CHECK(device >= 0 && device < cuda_device_count(), "cuda:", device,
             " does not exist (", cuda_device_count(), " CUDA device(s) visible)");
  DeviceContext& ctx = g_contexts[device];
  if (!ctx.stream) {
    CBST_CUDA_CHECK(cudaSetDevice(device));
    CBST_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx.stream, cudaStreamNonBlocking));
    CBST_CUBLAS_CHECK(cublasCreate(&ctx.cublas));
    CBST_CUBLAS_CHECK(cublasSetStream(ctx.cublas, ctx.stream));
    CBST_CUDNN_CHECK(cudnnCreate(&ctx.cudnn));
    CBST_CUDNN_CHECK(cudnnSetStream(ctx.cudnn, ctx.stream));
  }
  return ctx;
}

}  // namespace

bool cuda_built() { return true; }

int cuda_device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky "no device" error
      return 0;
    }
    return n;
  }();
  return count;
}

bool cuda_available() { return cuda_device_count() > 0; }

std::string cuda_device_name(int device) {
  if (device >= cuda_device_count()) return "none";
  cudaDeviceProp prop{};
  CBST_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return prop.name;
}

int cuda_current_device() {
  int d = 0;
  CBST_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

void cuda_synchronize(int device) {
  if (!cuda_available()) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  CBST_CUDA_CHECK(cudaSetDevice(device));
  CBST_CUDA_CHECK(cudaStreamSynchronize(context(device).stream));
}

cudaStream_t cuda_stream() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return context(cuda_current_device()).stream;
}

cublasHandle_t cublas_handle() {
  std::lock_guard<std::mutex> lock(g_mutex);
  DeviceContext& ctx = context(cuda_current_device());
  // TF32 tensor-core math for f32 GEMMs when allowed (PyTorch's cuDNN default for convs).
  CBST_CUBLAS_CHECK(cublasSetMathMode(
      ctx.cublas, tf32_enabled() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  return ctx.cublas;
}

cudnnHandle_t cudnn_handle() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return context(cuda_current_device()).cudnn;
}

void* cuda_workspace(size_t bytes) {
  const int device = cuda_current_device();
  DeviceContext* ctx;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    ctx = &context(device);
    if (ctx->workspace_bytes >= bytes) return ctx->workspace;
  }
  if (ctx->workspace) cuda_free(ctx->workspace, device);
  ctx->workspace = nullptr;
  ctx->workspace_bytes = 0;
  ctx->workspace = cuda_allocate(bytes, device, "cuDNN workspace");
  ctx->workspace_bytes = bytes;
  return ctx->workspace;
}

void* cuda_allocate(size_t bytes, int device, const char* what) {
  std::lock_guard<std::mutex> lock(g_mutex);
  context(device);
  DeviceCache& c = g_caches[device];
  const size_t size = round_size(bytes);
  // Reuse a cached block of at most twice the size asked for.
  auto it = c.free_blocks.lower_bound(size);
  if (it != c.free_blocks.end() && it->first <= 2 * size) {
    void* ptr = it->second;
    c.live[ptr] = it->first;
    c.allocated += it->first;
    c.free_blocks.erase(it);
    c.peak = std::max(c.peak, c.allocated);
    return ptr;
  }
  CBST_CUDA_CHECK(cudaSetDevice(device));
  void* ptr = nullptr;
  cudaError_t err = cudaMalloc(&ptr, size);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    release_cached_locked(device);
    err = cudaMalloc(&ptr, size);
  }
  if (err != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    const double mib = 1024.0 * 1024.0;
    char msg[512];
    std::snprintf(msg, sizeof msg,
                  "CUDA out of memory allocating %.1f MiB for %s on cuda:%d (%.1f MiB free of "
                  "%.1f MiB; cbst holds %.1f MiB in live tensors); hint: use a smaller crop "
                  "size or batch",
                  double(size) / mib, what, device, double(free_b) / mib,
                  double(total_b) / mib, double(c.allocated) / mib);
    throw Error(msg);
  }
  c.reserved += size;
  c.live[ptr] = size;
  c.allocated += size;
  c.peak = std::max(c.peak, c.allocated);
  return ptr;
}

void cuda_free(void* ptr, int device) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  DeviceCache& c = g_caches[device];
  auto it = c.live.find(ptr);
  if (it == c.live.end()) return;
  c.allocated -= it->second;
  c.free_blocks.emplace(it->second, ptr);
  c.live.erase(it);
}

CudaMemoryStats cuda_memory_stats(int device) {
  CudaMemoryStats s;
  if (!cuda_available()) return s;
  std::lock_guard<std::mutex> lock(g_mutex);
  const DeviceCache& c = g_caches[device];
  s.allocated = c.allocated;
  s.peak_allocated = c.peak;
  s.reserved = c.reserved;
  CBST_CUDA_CHECK(cudaSetDevice(device));
  CBST_CUDA_CHECK(cudaMemGetInfo(&s.device_free, &s.device_total));
  return s;
}

void cuda_reset_peak_memory(int device) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_caches[device].peak = g_caches[device].allocated;
}

void cuda_empty_cache() {
  if (!cuda_available()) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  for (int d = 0; d < cuda_device_count() && d < kMaxDevices; ++d) release_cached_locked(d);
}

void cuda_op_begin(Device d) {
  CBST_CHECK(cuda_available(), "no CUDA device is available (cbst was built with CUDA, but ",
             "cudaGetDeviceCount found none); run on a GPU host or use --device cpu");
  CBST_CUDA_CHECK(cudaSetDevice(d.index));
}

void cuda_op_end(const char* op) {
#if CBST_SYNC_DEBUG
  const cudaError_t err = cudaStreamSynchronize(cuda_stream());
  if (err != cudaSuccess)
    throw Error(std::string("CUDA error after op '") + op + "': " + cudaGetErrorString(err));
#else
  (void)op;
#endif
}

}  // namespace cbst

namespace cbst {

void cuda_memcpy(void* dst, const void* src, size_t bytes, int device, bool dst_host,
                 bool src_host) {
  if (bytes == 0) return;
  CBST_CUDA_CHECK(cudaSetDevice(device));
  cudaStream_t s = cuda_stream();
  const cudaMemcpyKind kind = dst_host ? (src_host ? cudaMemcpyHostToHost : cudaMemcpyDeviceToHost)
                                       : (src_host ? cudaMemcpyHostToDevice
                                                   : cudaMemcpyDeviceToDevice);
  CBST_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, s));
  if (dst_host || src_host) CBST_CUDA_CHECK(cudaStreamSynchronize(s));
}

}  // namespace cbst
