// Confusion-matrix counting on the GPU: each block builds a private histogram in shared
// memory (integer atomics, so the result is exact and independent of scheduling), then adds
// it to the global counts once.
#include <cstdint>
#include <vector>

#include "data/evaluation_kernels.h"
#include "engine/cuda/context.h"

namespace cbst::data {

namespace {

__global__ void confusion_matrix_kernel(unsigned long long* counts, const uint8_t* gt,
                                        const uint8_t* pred, int64_t n, int num_classes) {
  extern __shared__ unsigned int local[];
  const int bins = num_classes * (num_classes + 1);
  for (int i = threadIdx.x; i < bins; i += blockDim.x) local[i] = 0;
  __syncthreads();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int g = gt[i];
    if (g >= num_classes) continue;
    const int p = pred[i] < num_classes ? pred[i] : num_classes;
    atomicAdd(&local[g * (num_classes + 1) + p], 1u);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < bins; i += blockDim.x)
    if (local[i]) atomicAdd(&counts[i], (unsigned long long)local[i]);
}

}  // namespace

void confusion_matrix_accumulate_cuda(int64_t* counts, const uint8_t* gt, const uint8_t* pred,
                                      int64_t n, int num_classes, int device) {
  const int bins = num_classes * (num_classes + 1);
  const size_t bytes = size_t(bins) * sizeof(unsigned long long);
  CBST_CUDA_CHECK(cudaSetDevice(device));
  cudaStream_t stream = cuda_stream();
  auto* d_counts = static_cast<unsigned long long*>(cuda_allocate(bytes, device, "confusion matrix"));
  std::vector<unsigned long long> host(bins, 0);
  try {
    CBST_CUDA_CHECK(cudaMemsetAsync(d_counts, 0, bytes, stream));
    if (n > 0) {
      // A block-private histogram per block: cap the grid so the final global adds stay cheap
      // (each block's pass covers many pixels at 2048x1024).
      const int threads = 256;
      int blocks = cuda_blocks(n, threads);
      if (blocks > 1024) blocks = 1024;
      confusion_matrix_kernel<<<blocks, threads, bins * sizeof(unsigned int), stream>>>(
          d_counts, gt, pred, n, num_classes);
      CBST_CUDA_LAUNCH_CHECK();
    }
    CBST_CUDA_CHECK(cudaMemcpyAsync(host.data(), d_counts, bytes, cudaMemcpyDeviceToHost, stream));
    CBST_CUDA_CHECK(cudaStreamSynchronize(stream));
  } catch (...) {
    cuda_free(d_counts, device);
    throw;
  }
  cuda_free(d_counts, device);
  for (int i = 0; i < bins; ++i) counts[i] = int64_t(host[i]);
}

}  // namespace cbst::data
