// CPU bilinear upsampling: the specification. Parallel over (n, c) planes; backward scatters
// within a plane in output order (deterministic).
#include "engine/dispatch.h"
#include "layers/parallel_for.h"
#include "layers/upsample_kernels.h"

namespace cbst::layer_kernels::cpu {

void upsample_bilinear_forward(const Tensor& y, const Tensor& x, const BilinearAxis& rows,
                               const BilinearAxis& cols) {
  const int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
  const int64_t ho = y.size(2), wo = y.size(3);
  CBST_DISPATCH_FLOAT_TYPES(x.dtype(), "upsample_bilinear", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    parallel_for(planes, 4 * ho * wo, [&](int64_t plane) {
      const scalar_t* xs = px + plane * h * w;
      scalar_t* ys = py + plane * ho * wo;
      for (int64_t i = 0; i < ho; ++i) {
        const scalar_t* r0 = xs + rows.i0[size_t(i)] * w;
        const scalar_t* r1 = xs + rows.i1[size_t(i)] * w;
        const scalar_t a0 = scalar_t(rows.l0[size_t(i)]), a1 = scalar_t(rows.l1[size_t(i)]);
        for (int64_t j = 0; j < wo; ++j) {
          const int64_t c0 = cols.i0[size_t(j)], c1 = cols.i1[size_t(j)];
          const scalar_t b0 = scalar_t(cols.l0[size_t(j)]), b1 = scalar_t(cols.l1[size_t(j)]);
          ys[i * wo + j] = a0 * (b0 * r0[c0] + b1 * r0[c1]) + a1 * (b0 * r1[c0] + b1 * r1[c1]);
        }
      }
    });
  });
}

void upsample_bilinear_backward(const Tensor& dx, const Tensor& dy, const BilinearAxis& rows,
                                const BilinearAxis& cols) {
  const int64_t planes = dx.size(0) * dx.size(1), h = dx.size(2), w = dx.size(3);
  const int64_t ho = dy.size(2), wo = dy.size(3);
  CBST_DISPATCH_FLOAT_TYPES(dx.dtype(), "upsample_bilinear_backward", [&] {
    scalar_t* pdx = dx.data<scalar_t>();
    const scalar_t* pdy = dy.data<scalar_t>();
    parallel_for(planes, 4 * ho * wo, [&](int64_t plane) {
      scalar_t* d = pdx + plane * h * w;
      const scalar_t* g = pdy + plane * ho * wo;
      for (int64_t i = 0; i < ho; ++i) {
        const int64_t r0 = rows.i0[size_t(i)], r1 = rows.i1[size_t(i)];
        const scalar_t a0 = scalar_t(rows.l0[size_t(i)]), a1 = scalar_t(rows.l1[size_t(i)]);
        for (int64_t j = 0; j < wo; ++j) {
          const int64_t c0 = cols.i0[size_t(j)], c1 = cols.i1[size_t(j)];
          const scalar_t b0 = scalar_t(cols.l0[size_t(j)]), b1 = scalar_t(cols.l1[size_t(j)]);
          const scalar_t v = g[i * wo + j];
          d[r0 * w + c0] += a0 * b0 * v;
          d[r0 * w + c1] += a0 * b1 * v;
          d[r1 * w + c0] += a1 * b0 * v;
          d[r1 * w + c1] += a1 * b1 * v;
        }
      }
    });
  });
}

}  // namespace cbst::layer_kernels::cpu
