// CPU softmax / log_softmax: the specification. One (n, pixel) column of C values at a time.
#include <algorithm>
#include <cmath>

#include "engine/dispatch.h"
#include "layers/parallel_for.h"
#include "layers/softmax_kernels.h"

namespace cbst::layer_kernels::cpu {

namespace {

struct Geometry {
  int64_t outer, classes, inner;
};

Geometry geometry(const Tensor& t) {
  const int64_t c = t.size(1);
  return {t.size(0), c, c == 0 || t.size(0) == 0 ? 0 : t.numel() / (t.size(0) * c)};
}

}  // namespace

void softmax_forward(const Tensor& y, const Tensor& x, bool log) {
  const Geometry g = geometry(x);
  CBST_DISPATCH_FLOAT_TYPES(x.dtype(), "softmax", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    parallel_for(g.outer * g.inner, [&](int64_t col) {
      const int64_t n = col / g.inner, i = col % g.inner;
      const scalar_t* xs = px + n * g.classes * g.inner + i;
      scalar_t* ys = py + n * g.classes * g.inner + i;
      scalar_t m = xs[0];
      for (int64_t c = 1; c < g.classes; ++c) m = std::max(m, xs[c * g.inner]);
      scalar_t total = 0;
      for (int64_t c = 0; c < g.classes; ++c) total += std::exp(xs[c * g.inner] - m);
      const scalar_t log_total = std::log(total);
      for (int64_t c = 0; c < g.classes; ++c) {
        const scalar_t z = xs[c * g.inner] - m;
        ys[c * g.inner] = log ? z - log_total : std::exp(z) / total;
      }
    });
  });
}

void softmax_backward(const Tensor& dx, const Tensor& dy, const Tensor& y, bool log) {
  const Geometry g = geometry(y);
  CBST_DISPATCH_FLOAT_TYPES(y.dtype(), "softmax_backward", [&] {
    const scalar_t* pdy = dy.data<scalar_t>();
    const scalar_t* py = y.data<scalar_t>();
    scalar_t* pdx = dx.data<scalar_t>();
    parallel_for(g.outer * g.inner, [&](int64_t col) {
      const int64_t base = (col / g.inner) * g.classes * g.inner + col % g.inner;
      scalar_t dot = 0;
      for (int64_t c = 0; c < g.classes; ++c) {
        const int64_t k = base + c * g.inner;
        dot += log ? pdy[k] : pdy[k] * py[k];
      }
      for (int64_t c = 0; c < g.classes; ++c) {
        const int64_t k = base + c * g.inner;
        pdx[k] = log ? pdy[k] - std::exp(py[k]) * dot : py[k] * (pdy[k] - dot);
      }
    });
  });
}

}  // namespace cbst::layer_kernels::cpu
