// CPU dropout: mask from Philox (engine/kernel_math.h, shared with CUDA), then scale.
#include "engine/dispatch.h"
#include "engine/kernel_math.h"
#include "layers/dropout_kernels.h"
#include "layers/parallel_for.h"

namespace cbst::layer_kernels::cpu {

namespace {

// out[i] = in[i]·scale where mask entry i / group is set, else 0: one mask entry at a time,
// so no division per element (a 64-bit division cost more than the rest of the loop).
template <class T>
void apply_mask(T* out, const T* in, const uint8_t* m, int64_t entries, int64_t group, T scale) {
#pragma omp parallel for schedule(static) if (entries * group > 4096)
  for (int64_t e = 0; e < entries; ++e) {
    const bool keep = m[e] != 0;
    for (int64_t i = e * group; i < (e + 1) * group; ++i) out[i] = keep ? in[i] * scale : T(0);
  }
}

}  // namespace

void dropout_forward(const Tensor& y, const Tensor& mask, const Tensor& x, double p,
                     int64_t group, uint64_t seed, uint64_t offset) {
  uint8_t* m = mask.data<uint8_t>();
  parallel_for(mask.numel(), [&](int64_t k) {
    m[k] = kern::random_bernoulli(seed, offset + uint64_t(k), 1.0 - p) != 0.0 ? 1 : 0;
  });
  CBST_DISPATCH_FLOAT_TYPES(x.dtype(), "dropout", [&] {
    const scalar_t scale = scalar_t(1.0 / (1.0 - p));
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    apply_mask(py, px, m, mask.numel(), group, scale);
  });
}

void dropout_backward(const Tensor& dx, const Tensor& dy, const Tensor& mask, double p,
                      int64_t group) {
  const uint8_t* m = mask.data<uint8_t>();
  CBST_DISPATCH_FLOAT_TYPES(dy.dtype(), "dropout_backward", [&] {
    const scalar_t scale = scalar_t(1.0 / (1.0 - p));
    const scalar_t* g = dy.data<scalar_t>();
    scalar_t* d = dx.data<scalar_t>();
    apply_mask(d, g, m, mask.numel(), group, scale);
  });
}

}  // namespace cbst::layer_kernels::cpu
