// Device-independent parts of the CUDA context, and its stand-ins when CUDA is not built.
#include "engine/cuda_context.h"

#include <atomic>

#include "engine/check.h"
#include "engine/dispatch.h"

namespace cbst {

namespace {
std::atomic<bool> g_tf32{true};
std::atomic<bool> g_deterministic{false};
thread_local const char* g_allocation_scope = nullptr;
}  // namespace

void set_tf32_enabled(bool enabled) { g_tf32 = enabled; }
bool tf32_enabled() { return g_tf32; }
void set_deterministic(bool enabled) { g_deterministic = enabled; }
bool deterministic() { return g_deterministic; }

AllocationScope::AllocationScope(const char* what) : previous_(g_allocation_scope) {
  g_allocation_scope = what;
}
AllocationScope::~AllocationScope() { g_allocation_scope = previous_; }
const char* AllocationScope::current() {
  return g_allocation_scope ? g_allocation_scope : "tensor";
}

void throw_no_cuda_build(const char* op) {
  CBST_THROW("op '", op, "' was called on a CUDA tensor, but cbst was built without CUDA; ",
             "rebuild with nvcc available (cmake -DCBST_CUDA=ON) or use --device cpu");
}

#if !CBST_WITH_CUDA
bool cuda_built() { return false; }
bool cuda_available() { return false; }
int cuda_device_count() { return 0; }
std::string cuda_device_name(int) { return "none"; }
void cuda_synchronize(int) {}
CudaMemoryStats cuda_memory_stats(int) { return {}; }
void cuda_reset_peak_memory(int) {}
void cuda_empty_cache() {}
void cuda_op_begin(Device) { throw_no_cuda_build("cuda"); }
void cuda_op_end(const char*) {}
#endif

}  // namespace cbst
