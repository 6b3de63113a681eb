#include "engine/storage.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>

#include "engine/check.h"
#include "engine/cuda/memory.h"
#include "engine/cuda_context.h"
#include "engine/dispatch.h"
#include "engine/sanitizers.h"

namespace cbst {

namespace {

// Below this, malloc's own free lists already reuse memory without page faults.
constexpr size_t kCacheMin = size_t(64) << 10;
// Blocks from 4 MiB on are 2 MiB aligned and asked to be transparent huge pages: one fault
// per 2 MiB instead of 512, and fewer TLB misses when GEMM packs a large im2col matrix.
constexpr size_t kHugeMin = size_t(4) << 20, kHugeAlign = size_t(2) << 20;
// Beyond this many cached bytes a freed block goes back to the system (CBST_CPU_CACHE_MB).
size_t cache_limit() {
  static const size_t limit = [] {
#if CBST_ASAN
    return size_t(0);  // let AddressSanitizer see every use after free
#endif
    const char* env = std::getenv("CBST_CPU_CACHE_MB");
    return env ? size_t(std::strtoull(env, nullptr, 10)) << 20 : size_t(4) << 30;
  }();
  return limit;
}

// Size classes: 8 per power of two (at most 12.5% rounding), so a tensor whose shape moves a
// little (a crop, a last batch) still finds its block.
size_t size_class(size_t nbytes) {
  if (nbytes < kCacheMin) return (nbytes + 63) / 64 * 64;
  int top = 63 - __builtin_clzll(nbytes);
  const size_t step = size_t(1) << (top - 3);
  return (nbytes + step - 1) / step * step;
}

class CpuBlockCache {
 public:
  void* allocate(size_t bytes) {
    if (bytes >= kCacheMin) {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end()) {
        void* p = it->second;
        free_.erase(it);
        stats_.cached_bytes -= bytes;
        ++stats_.hits;
        return p;
      }
      ++stats_.misses;
    }
    return system_allocate(bytes);
  }

  void release(void* p, size_t bytes) {
    if (bytes >= kCacheMin) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stats_.cached_bytes + bytes <= cache_limit()) {
        free_.emplace(bytes, p);
        stats_.cached_bytes += bytes;
        return;
      }
    }
    std::free(p);
  }

  void release_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [bytes, p] : free_) std::free(p);
    free_.clear();
    stats_.cached_bytes = 0;
  }

  CpuCacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    CpuCacheStats s = stats_;
    s.limit_bytes = cache_limit();
    return s;
  }

 private:
  static void* system_allocate(size_t bytes) {
    if (bytes < kHugeMin) return std::aligned_alloc(64, bytes);
    void* p = std::aligned_alloc(kHugeAlign, (bytes + kHugeAlign - 1) / kHugeAlign * kHugeAlign);
    if (p) madvise(p, bytes, MADV_HUGEPAGE);  // advice only: failure changes nothing
    return p;
  }

  std::mutex mutex_;
  std::multimap<size_t, void*> free_;
  CpuCacheStats stats_;
};

// Never destroyed: tensors in static storage may be freed after main returns.
CpuBlockCache& cpu_cache() {
  static auto* cache = new CpuBlockCache;
  return *cache;
}

}  // namespace

CpuCacheStats cpu_cache_stats() { return cpu_cache().stats(); }
void cpu_cache_release() { cpu_cache().release_all(); }

Storage::Storage(size_t nbytes, Device device, const char* what)
    : nbytes_(nbytes), device_(device) {
  if (device.is_cpu()) {
    data_ = cpu_cache().allocate(size_class(nbytes ? nbytes : 1));
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
    cpu_cache().release(data_, size_class(nbytes_ ? nbytes_ : 1));
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
