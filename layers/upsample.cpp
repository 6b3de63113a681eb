// upsample_bilinear front-end: output size, per-axis taps, dispatch, autograd.
#include "layers/upsample.h"

#include <cmath>
#include <memory>

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "layers/layer_dispatch.h"
#include "layers/upsample_kernels.h"

namespace cbst {

namespace layer_kernels {

BilinearAxis bilinear_axis(int64_t input, int64_t output, bool align_corners, double scale) {
  BilinearAxis a;
  a.i0.resize(size_t(output));
  a.i1.resize(size_t(output));
  a.l0.resize(size_t(output));
  a.l1.resize(size_t(output));
  if (align_corners) scale = output > 1 ? double(input - 1) / double(output - 1) : 0.0;
  for (int64_t i = 0; i < output; ++i) {
    double src = align_corners ? double(i) * scale : (double(i) + 0.5) * scale - 0.5;
    if (src < 0) src = 0;
    int64_t lo = int64_t(src);
    if (lo > input - 1) lo = input - 1;
    const int64_t hi = lo < input - 1 ? lo + 1 : lo;
    const double lambda = src - double(lo);
    a.i0[size_t(i)] = lo;
    a.i1[size_t(i)] = hi;
    a.l0[size_t(i)] = 1.0 - lambda;
    a.l1[size_t(i)] = lambda;
  }
  // Gather lists (counting sort by input index; outputs stay in increasing order).
  a.gather_begin.assign(size_t(input + 1), 0);
  for (int64_t i = 0; i < output; ++i) {
    ++a.gather_begin[size_t(a.i0[size_t(i)] + 1)];
    ++a.gather_begin[size_t(a.i1[size_t(i)] + 1)];
  }
  for (int64_t k = 0; k < input; ++k) a.gather_begin[size_t(k + 1)] += a.gather_begin[size_t(k)];
  a.gather_index.resize(size_t(2 * output));
  a.gather_weight.resize(size_t(2 * output));
  std::vector<int64_t> fill(a.gather_begin.begin(), a.gather_begin.end() - 1);
  for (int64_t i = 0; i < output; ++i) {
    const int64_t lo = a.i0[size_t(i)], hi = a.i1[size_t(i)];
    a.gather_index[size_t(fill[size_t(lo)])] = i;
    a.gather_weight[size_t(fill[size_t(lo)]++)] = a.l0[size_t(i)];
    a.gather_index[size_t(fill[size_t(hi)])] = i;
    a.gather_weight[size_t(fill[size_t(hi)]++)] = a.l1[size_t(i)];
  }
  return a;
}

}  // namespace layer_kernels

Tensor upsample_bilinear(const Tensor& x, const UpsampleOptions& o) {
  CBST_CHECK(x.dim() == 4, "upsample_bilinear: needs x of shape (N, C, H, W), got ", x.str());
  CBST_CHECK(is_floating(x.dtype()), "upsample_bilinear: needs f32 or f64, got ", x.str());
  const bool by_size = o.height > 0 || o.width > 0;
  CBST_CHECK(by_size != (o.scale_factor > 0), "upsample_bilinear: give either the output size "
             "(height, width) or a scale_factor, not both or neither (got ", o.height, "x",
             o.width, ", scale_factor ", o.scale_factor, ")");
  const int64_t h = x.size(2), w = x.size(3);
  CBST_CHECK(h > 0 && w > 0, "upsample_bilinear: empty spatial input ", x.str());
  const int64_t ho = by_size ? o.height : int64_t(std::floor(double(h) * o.scale_factor));
  const int64_t wo = by_size ? o.width : int64_t(std::floor(double(w) * o.scale_factor));
  CBST_CHECK(ho > 0 && wo > 0, "upsample_bilinear: output size ", ho, "x", wo,
             " must be positive (input ", x.str(), ")");
  // torch uses 1/scale_factor (not input/output) when a scale factor is given.
  const double sh = by_size ? double(h) / double(ho) : 1.0 / o.scale_factor;
  const double sw = by_size ? double(w) / double(wo) : 1.0 / o.scale_factor;
  auto rows = std::make_shared<layer_kernels::BilinearAxis>(
      layer_kernels::bilinear_axis(h, ho, o.align_corners, sh));
  auto cols = std::make_shared<layer_kernels::BilinearAxis>(
      layer_kernels::bilinear_axis(w, wo, o.align_corners, sw));
  AllocationScope scope("upsample_bilinear");
  const Tensor xc = x.detach().contiguous();
  Tensor y = Tensor::empty({x.size(0), x.size(1), ho, wo}, x.dtype(), x.device());
  if (y.numel() > 0)
    CBST_LAYER_DISPATCH("upsample_bilinear", x.device(), upsample_bilinear_forward, y, xc, *rows, *cols);
  return record("upsample_bilinear", y, {x}, [rows, cols, in_shape = x.shape()](const Tensor& g) {
    AllocationScope bscope("upsample_bilinear_backward");
    Tensor dx = Tensor::zeros(in_shape, g.dtype(), g.device());
    const Tensor gc = g.contiguous();
    if (gc.numel() > 0)
      CBST_LAYER_DISPATCH("upsample_bilinear_backward", g.device(), upsample_bilinear_backward,
                          dx, gc, *rows, *cols);
    return std::vector<Tensor>{dx};
  });
}

}  // namespace cbst
