// CUDA side of the f16 probability cache: element-wise conversions (grid-stride).
#include "engine/cuda/context.h"
#include "selftrain/prob_cache_math.h"

namespace cbst {

namespace {
__global__ void f2h_kernel(uint16_t* dst, const float* src, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x)
    dst[i] = f32_to_f16(src[i]);
}
__global__ void h2f_kernel(float* dst, const uint16_t* src, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x)
    dst[i] = f16_to_f32(src[i]);
}
}  // namespace

void float_to_half_cuda(uint16_t* dst, const float* src, int64_t n) {
  if (n == 0) return;
  f2h_kernel<<<cuda_blocks(n), 256, 0, cuda_stream()>>>(dst, src, n);
  CBST_CUDA_LAUNCH_CHECK();
}

void half_to_float_cuda(float* dst, const uint16_t* src, int64_t n) {
  if (n == 0) return;
  h2f_kernel<<<cuda_blocks(n), 256, 0, cuda_stream()>>>(dst, src, n);
  CBST_CUDA_LAUNCH_CHECK();
}

}  // namespace cbst
