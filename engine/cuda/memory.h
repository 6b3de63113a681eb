// Device memory entry points usable from host-compiled code (no CUDA headers).
#pragma once

#include <cstddef>

namespace cbst {

void* cuda_allocate(size_t bytes, int device, const char* what);
void cuda_free(void* ptr, int device);
// Copies on the device's stream; returns after the copy when either side is host memory.
void cuda_memcpy(void* dst, const void* src, size_t bytes, int device, bool dst_host,
                 bool src_host);

}  // namespace cbst
