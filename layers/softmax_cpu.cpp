// CPU softmax / log_softmax: the specification. Forward in blocks of pixels, backward one
// (n, pixel) column of C values at a time.
#include <algorithm>
#include <cmath>

#include "engine/cpu/exp.h"
#include "engine/dispatch.h"
#include "layers/parallel_for.h"
#include "layers/pixel_blocks.h"
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
    // Per pixel: m = max over classes, Σ exp(x − m) in class order, then z − log Σ or
    // exp(z) / Σ with z = x − m; in blocks of pixels, class by class (layers/pixel_blocks.h).
    for_each_pixel_block(g.outer, g.inner, [&](int64_t n, int64_t q0, int64_t len) {
      const scalar_t* xs = px + n * g.classes * g.inner + q0;
      scalar_t* ys = py + n * g.classes * g.inner + q0;
      scalar_t m[kPixelBlock], total[kPixelBlock], e[kPixelBlock];
      max_and_exp_sum(m, total, e, xs, g.classes, g.inner, len);
      if (log) {
        scalar_t log_total[kPixelBlock];
        for (int64_t q = 0; q < len; ++q) log_total[q] = std::log(total[q]);
        for (int64_t c = 0; c < g.classes; ++c)
          for (int64_t q = 0; q < len; ++q) ys[c * g.inner + q] = (xs[c * g.inner + q] - m[q]) - log_total[q];
        return;
      }
      for (int64_t c = 0; c < g.classes; ++c) {
        for (int64_t q = 0; q < len; ++q) e[q] = xs[c * g.inner + q] - m[q];
        kern::cpu::exp_n(e, e, len);
        for (int64_t q = 0; q < len; ++q) ys[c * g.inner + q] = e[q] / total[q];
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
