// A block of memory on one device. CPU blocks are 64-byte aligned; CUDA blocks come from
// the caching allocator (engine/cuda/allocator.cu), so no op pays for cudaMalloc/cudaFree.
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

// Raw copies between devices (synchronous with respect to the host when a host side is involved).
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

}  // namespace cbst
