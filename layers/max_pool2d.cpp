// max_pool2d front-end: size rules, checks, dispatch, autograd.
#include "layers/max_pool2d.h"

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "layers/layer_dispatch.h"
#include "layers/max_pool2d_kernels.h"

namespace cbst {

namespace {

MaxPool2dOptions normalised(MaxPool2dOptions o) {
  if (o.stride == 0) o.stride = o.kernel;
  CBST_CHECK(o.kernel > 0 && o.stride > 0 && o.pad >= 0, "max_pool2d: kernel ", o.kernel,
             ", stride ", o.stride, " and pad ", o.pad, " must be positive (pad ≥ 0)");
  CBST_CHECK(o.pad <= o.kernel / 2, "max_pool2d: pad ", o.pad,
             " must be at most half the kernel size ", o.kernel, " (as torch)");
  return o;
}

}  // namespace

int64_t max_pool2d_output_size(int64_t input, const MaxPool2dOptions& options) {
  const MaxPool2dOptions o = normalised(options);
  const int64_t span = input + 2 * o.pad - o.kernel;
  CBST_CHECK(span >= 0, "max_pool2d: input size ", input, " with pad ", o.pad,
             " is smaller than the kernel ", o.kernel);
  int64_t out = (o.ceil_mode ? (span + o.stride - 1) / o.stride : span / o.stride) + 1;
  // torch/Caffe: the last window must start inside the input or the left padding.
  if (o.ceil_mode && (out - 1) * o.stride >= input + o.pad) --out;
  return out;
}

std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x,
                                                  const MaxPool2dOptions& options) {
  CBST_CHECK(x.dim() == 4, "max_pool2d: needs x of shape (N, C, H, W), got ", x.str());
  CBST_CHECK(is_floating(x.dtype()), "max_pool2d: needs f32 or f64, got ", x.str());
  const MaxPool2dOptions o = normalised(options);
  const int64_t ho = max_pool2d_output_size(x.size(2), o);
  const int64_t wo = max_pool2d_output_size(x.size(3), o);
  AllocationScope scope("max_pool2d");
  const Tensor xc = x.detach().contiguous();
  const Shape out_shape{x.size(0), x.size(1), ho, wo};
  Tensor y = Tensor::empty(out_shape, x.dtype(), x.device());
  Tensor indices = Tensor::empty(out_shape, DType::i64, x.device());
  if (y.numel() > 0) CBST_LAYER_DISPATCH("max_pool2d", x.device(), max_pool2d_forward, y, indices, xc, o);
  y = record("max_pool2d", y, {x}, [indices, o, in_shape = x.shape()](const Tensor& g) {
    AllocationScope bscope("max_pool2d_backward");
    Tensor dx = Tensor::zeros(in_shape, g.dtype(), g.device());
    const Tensor gc = g.contiguous();
    if (gc.numel() > 0)
      CBST_LAYER_DISPATCH("max_pool2d_backward", g.device(), max_pool2d_backward, dx, gc, indices, o);
    return std::vector<Tensor>{dx};
  });
  return {y, indices};
}

Tensor max_pool2d(const Tensor& x, const MaxPool2dOptions& options) {
  return max_pool2d_with_indices(x, options).first;
}

}  // namespace cbst
