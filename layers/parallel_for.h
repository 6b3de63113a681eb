// parallel_for(n, f): f(i) for i in [0, n) over the OpenMP threads, static schedule (so a
// given thread count always splits the work the same way). A function rather than a pragma
// at the call site because the CPU kernels run inside CBST_DISPATCH_* macro arguments,
// where a #pragma is not allowed.
#pragma once

#include <cstdint>

namespace cbst::layer_kernels {

template <class F>
void parallel_for(int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n > 256)
  for (int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace cbst::layer_kernels
