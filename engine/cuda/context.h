// Internal CUDA runtime context: the per-device stream, cuBLAS and cuDNN handles, a
// reusable workspace, and the check macros. Only .cu/.cpp files of the CUDA backend include
// this; public headers never do.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>

#include "engine/check.h"

namespace cbst {

namespace detail {
[[noreturn]] void fail_library(const char* library, const char* expr, const std::string& message,
                               const char* file, int line);
}  // namespace detail

// The stream every op of the current device runs on.
cudaStream_t cuda_stream();
cublasHandle_t cublas_handle();
cudnnHandle_t cudnn_handle();
int cuda_current_device();

// A device scratch buffer of at least `bytes`, owned by the context and reused across
// calls on the current device (convolution workspaces). Valid until the next call.
void* cuda_workspace(size_t bytes);

// Raw device memory from the caching allocator (engine/cuda/allocator.cu).
void* cuda_allocate(size_t bytes, int device, const char* what);
void cuda_free(void* ptr, int device);

// Launch geometry for grid-stride loops over n elements.
inline int cuda_blocks(int64_t n, int threads = 256) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return int(b > 65535 * 8 ? 65535 * 8 : b);
}

}  // namespace cbst

#define CBST_CUDA_CHECK(expr)                                                           \
  do {                                                                                  \
    const cudaError_t cbst_err_ = (expr);                                               \
    if (cbst_err_ != cudaSuccess) [[unlikely]]                                          \
      ::cbst::detail::fail_library("CUDA", #expr, cudaGetErrorString(cbst_err_), __FILE__, \
                                   __LINE__);                                           \
  } while (0)

#define CBST_CUBLAS_CHECK(expr)                                                         \
  do {                                                                                  \
    const cublasStatus_t cbst_st_ = (expr);                                             \
    if (cbst_st_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                                 \
      ::cbst::detail::fail_library("cuBLAS", #expr, cublasGetStatusString(cbst_st_),    \
                                   __FILE__, __LINE__);                                 \
  } while (0)

#define CBST_CUDNN_CHECK(expr)                                                          \
  do {                                                                                  \
    const cudnnStatus_t cbst_st_ = (expr);                                              \
    if (cbst_st_ != CUDNN_STATUS_SUCCESS) [[unlikely]]                                  \
      ::cbst::detail::fail_library("cuDNN", #expr, cudnnGetErrorString(cbst_st_),       \
                                   __FILE__, __LINE__);                                 \
  } while (0)

// After every kernel launch.
#define CBST_CUDA_LAUNCH_CHECK() CBST_CUDA_CHECK(cudaGetLastError())

// Non-throwing variant for destructors.
#define CBST_CUDA_CHECK_LOG(expr)                                                       \
  do {                                                                                  \
    const cudaError_t cbst_err_ = (expr);                                               \
    if (cbst_err_ != cudaSuccess)                                                       \
      fprintf(stderr, "cbst: %s failed: %s [%s:%d]\n", #expr, cudaGetErrorString(cbst_err_), \
              __FILE__, __LINE__);                                                      \
  } while (0)
