// The CUDA runtime as seen from code that must not include CUDA headers. Every function
// works (and answers "no device") in a build without the CUDA backend.
#pragma once

#include <cstddef>
#include <string>

namespace cbst {

bool cuda_built();       // the CUDA backend was compiled in
bool cuda_available();   // built, and at least one device is usable
int cuda_device_count(); // 0 without a device
std::string cuda_device_name(int device = 0);
void cuda_synchronize(int device = 0);

struct CudaMemoryStats {
  size_t allocated = 0;       // bytes held by live tensors
  size_t peak_allocated = 0;  // high-water mark since the last reset
  size_t reserved = 0;        // bytes held by the caching allocator (live + cached)
  size_t device_free = 0;     // cudaMemGetInfo
  size_t device_total = 0;
};
CudaMemoryStats cuda_memory_stats(int device = 0);
void cuda_reset_peak_memory(int device = 0);
void cuda_empty_cache();  // returns cached blocks to the driver

// TF32 for convolutions and GEMMs (on by default, as PyTorch's cuDNN default).
void set_tf32_enabled(bool enabled);
bool tf32_enabled();
// Deterministic algorithms only (cuDNN/cuBLAS choices, no float atomics in our kernels).
void set_deterministic(bool enabled);
bool deterministic();

// Names the op that allocates (for out-of-memory messages); set by op front-ends.
class AllocationScope {
 public:
  explicit AllocationScope(const char* what);
  ~AllocationScope();
  AllocationScope(const AllocationScope&) = delete;
  AllocationScope& operator=(const AllocationScope&) = delete;
  static const char* current();

 private:
  const char* previous_;
};

}  // namespace cbst
