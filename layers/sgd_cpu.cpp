// CPU SGD update and gradient sum of squares.
#include "engine/dispatch.h"
#include "layers/parallel_for.h"
#include "layers/sgd_kernels.h"

namespace cbst::layer_kernels::cpu {

void sgd_update(const Tensor& param, const Tensor& buf, const Tensor& grad, const SgdUpdate& u) {
  CBST_DISPATCH_FLOAT_TYPES(param.dtype(), "sgd_update", [&] {
    scalar_t* p = param.data<scalar_t>();
    const scalar_t* g = grad.data<scalar_t>();
    scalar_t* b = buf.defined() ? buf.data<scalar_t>() : nullptr;
    const scalar_t lr = scalar_t(u.lr), mu = scalar_t(u.momentum), wd = scalar_t(u.weight_decay);
    const scalar_t gs = scalar_t(u.grad_scale);
    parallel_for(param.numel(), [&](int64_t i) {
      const scalar_t d = g[i] * gs + wd * p[i];
      if (b) {
        b[i] = mu * b[i] + d;
        p[i] -= lr * b[i];
      } else {
        p[i] -= lr * d;
      }
    });
  });
}

void sum_of_squares(const Tensor& scratch, int64_t slot, const Tensor& grad) {
  double total = 0.0;
  CBST_DISPATCH_FLOAT_TYPES(grad.dtype(), "sum_of_squares", [&] {
    const scalar_t* g = grad.data<scalar_t>();
    for (int64_t i = 0; i < grad.numel(); ++i) total += double(g[i]) * double(g[i]);
  });
  scratch.data<double>()[slot] = total;
}

}  // namespace cbst::layer_kernels::cpu
