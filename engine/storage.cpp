#include "engine/storage.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "engine/check.h"
#include "engine/cuda/memory.h"
#include "engine/cuda_context.h"
#include "engine/dispatch.h"

namespace cbst {

Storage::Storage(size_t nbytes, Device device, const char* what)
    : nbytes_(nbytes), device_(device) {
  if (device.is_cpu()) {
    const size_t rounded = (nbytes + 63) / 64 * 64;
    data_ = std::aligned_alloc(64, rounded ? rounded : 64);
    if (!data_)
      CBST_THROW("out of host memory allocating ", nbytes, " bytes for ", what,
                 "; hint: use a smaller crop size or batch");
    return;
  }
#if CBST_WITH_CUDA
  CBST_CHECK(cuda_available(), "cannot allocate ", what, " on ", device.str(),
             ": no CUDA device is available; run on a GPU host or use --device cpu");
  data_ = cuda_allocate(nbytes, device.index, what);
#else
  CBST_THROW("cannot allocate ", what, " on ", device.str(), ": cbst was built without CUDA; ",
             "rebuild with nvcc available (cmake -DCBST_CUDA=ON) or use --device cpu");
#endif
}

Storage::~Storage() {
  if (device_.is_cpu()) {
    std::free(data_);
  } else {
#if CBST_WITH_CUDA
    cuda_free(data_, device_.index);
#endif
  }
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
#if CBST_WITH_CUDA
  const int device = dst_device.is_cuda() ? dst_device.index : src_device.index;
  CBST_CHECK(!(dst_device.is_cuda() && src_device.is_cuda() &&
               dst_device.index != src_device.index),
             "copy between two different CUDA devices (", src_device.str(), " -> ",
             dst_device.str(), ") is not supported; go through the CPU");
  cuda_memcpy(dst, src, nbytes, device, dst_device.is_cpu(), src_device.is_cpu());
#else
  throw_no_cuda_build("copy");
#endif
}

}  // namespace cbst
