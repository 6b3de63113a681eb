// CPU dropout: mask from Philox (engine/kernel_math.h, shared with CUDA), then scale.
#include "engine/dispatch.h"
#include "engine/kernel_math.h"
#include "layers/dropout_kernels.h"
#include "layers/parallel_for.h"

namespace cbst::layer_kernels::cpu {

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
    parallel_for(x.numel(), [&](int64_t i) { py[i] = m[i / group] ? px[i] * scale : scalar_t(0); });
  });
}

void dropout_backward(const Tensor& dx, const Tensor& dy, const Tensor& mask, double p,
                      int64_t group) {
  const uint8_t* m = mask.data<uint8_t>();
  CBST_DISPATCH_FLOAT_TYPES(dy.dtype(), "dropout_backward", [&] {
    const scalar_t scale = scalar_t(1.0 / (1.0 - p));
    const scalar_t* g = dy.data<scalar_t>();
    scalar_t* d = dx.data<scalar_t>();
    parallel_for(dy.numel(), [&](int64_t i) { d[i] = m[i / group] ? g[i] * scale : scalar_t(0); });
  });
}

}  // namespace cbst::layer_kernels::cpu
