// A block of memory on one device. CPU blocks are 64-byte aligned; CUDA blocks come from
// the caching allocator (engine/cuda/allocator.cu), so no op pays for cudaMalloc/cudaFree.
// CPU blocks of 64 KiB and more are cached too (engine/storage.cpp): a freed block goes to a
// free list of its size class and the next tensor of that class takes it, so a training
// step stops paying the kernel for fresh zeroed pages (a fifth of a VGG step before).
#pragma once

#include <cstddef>
#include <memory>

#include "engine/dtype.h"

namespace cbst {

class Storage {
 public:
  // Allocates `nbytes` on `device`; `what` names the tensor or op in an out-of-memory error.
  Storage(size_t nbytes, Device device, const char* what = "tensor");
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

// The CPU block cache: bytes held in free lists, and how many allocations it served.
struct CpuCacheStats {
  size_t cached_bytes = 0;
  int64_t hits = 0, misses = 0;
  size_t limit_bytes = 0;  // the most it keeps: 0 (off) under AddressSanitizer or CBST_CPU_CACHE_MB=0
};
CpuCacheStats cpu_cache_stats();
void cpu_cache_release();  // returns every cached block to the system

// Raw copies between devices (synchronous with respect to the host when a host side is involved).
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

}  // namespace cbst
