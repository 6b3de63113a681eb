// CPU soft-target cross-entropy: the specification. Per-pixel terms in parallel into a
// buffer, summed in pixel order in double, so the result does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/dispatch.h"
#include "layers/parallel_for.h"
#include "layers/soft_cross_entropy_kernels.h"

namespace cbst::layer_kernels::cpu {

void soft_cross_entropy_forward(const Tensor& loss, const Tensor& valid, const Tensor& lse,
                                const Tensor& logits, const Tensor& targets) {
  const int64_t n = logits.size(0), classes = logits.size(1);
  const int64_t inner = logits.numel() / (n * classes);
  CBST_DISPATCH_FLOAT_TYPES(logits.dtype(), "soft_cross_entropy", [&] {
    const scalar_t* x = logits.data<scalar_t>();
    const scalar_t* t = targets.data<scalar_t>();
    scalar_t* plse = lse.data<scalar_t>();
    const int64_t pixels = n * inner;
    std::vector<double> term(size_t(pixels), 0.0);
    std::vector<char> counted(size_t(pixels), 0);
    parallel_for(pixels, [&](int64_t p) {
      const int64_t base = (p / inner) * classes * inner + p % inner;
      scalar_t m = x[base];
      for (int64_t c = 1; c < classes; ++c) m = std::max(m, x[base + c * inner]);
      scalar_t total = 0;
      for (int64_t c = 0; c < classes; ++c) total += std::exp(x[base + c * inner] - m);
      const scalar_t l = m + std::log(total);
      plse[p] = l;
      double s = 0.0, e = 0.0;
      for (int64_t c = 0; c < classes; ++c) {
        const double tc = double(t[base + c * inner]);
        s += tc;
        if (tc != 0.0) e += tc * double(l - x[base + c * inner]);
      }
      term[size_t(p)] = e;
      counted[size_t(p)] = s != 0.0;
    });
    double total_term = 0.0, total_valid = 0.0;
    for (int64_t p = 0; p < pixels; ++p) {
      total_term += term[size_t(p)];
      total_valid += counted[size_t(p)];
    }
    loss.data<scalar_t>()[0] = scalar_t(total_valid != 0.0 ? total_term / total_valid : 0.0);
    valid.data<scalar_t>()[0] = scalar_t(total_valid);
  });
}

void soft_cross_entropy_backward(const Tensor& dx, const Tensor& g, const Tensor& logits,
                                 const Tensor& targets, const Tensor& lse, const Tensor& valid) {
  const int64_t n = logits.size(0), classes = logits.size(1);
  const int64_t inner = logits.numel() / (n * classes);
  CBST_DISPATCH_FLOAT_TYPES(logits.dtype(), "soft_cross_entropy_backward", [&] {
    const scalar_t* x = logits.data<scalar_t>();
    const scalar_t* t = targets.data<scalar_t>();
    const scalar_t* plse = lse.data<scalar_t>();
    scalar_t* d = dx.data<scalar_t>();
    const scalar_t v = valid.data<scalar_t>()[0];
    const scalar_t scale = v != scalar_t(0) ? g.data<scalar_t>()[0] / v : scalar_t(0);
    parallel_for(n * inner, [&](int64_t p) {
      const int64_t base = (p / inner) * classes * inner + p % inner;
      scalar_t s = 0;
      for (int64_t c = 0; c < classes; ++c) s += t[base + c * inner];
      for (int64_t c = 0; c < classes; ++c) {
        const int64_t k = base + c * inner;
        d[k] = scale * (s * std::exp(x[k] - plse[p]) - t[k]);
      }
    });
  });
}

}  // namespace cbst::layer_kernels::cpu
