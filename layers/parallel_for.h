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

// The same for few large items (images, planes), `cost` element operations each: on the
// threads when the whole is worth a fork and join, however few the items. (Counting items
// alone left pooling and upsampling of 4 images × 19 to 96 channels on one thread while the
// other waited: a tenth of small-deeplabv3plus's training step.)
template <class F>
void parallel_for(int64_t n, int64_t cost, F f) {
#pragma omp parallel for schedule(static) if (n > 1 && n * cost > 32768)
  for (int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace cbst::layer_kernels
