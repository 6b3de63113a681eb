// softmax / log_softmax front-ends: checks, dispatch, autograd.
#include "layers/softmax.h"

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "layers/layer_dispatch.h"
#include "layers/softmax_kernels.h"

namespace cbst {

namespace {

void check_input(const Tensor& x, const char* op) {
  CBST_CHECK(x.dim() >= 2, op, ": needs a tensor of shape (N, C) or (N, C, H, W) (classes in "
             "dim 1), got ", x.str());
  CBST_CHECK(is_floating(x.dtype()), op, ": needs f32 or f64 logits, got ", x.str());
}

Tensor softmax_backward(const Tensor& dy, const Tensor& y, bool log) {
  const char* op = log ? "log_softmax_backward" : "softmax_backward";
  AllocationScope scope(op);
  Tensor dx = Tensor::empty(y.shape(), y.dtype(), y.device());
  const Tensor g = dy.contiguous();
  CBST_LAYER_DISPATCH(op, y.device(), softmax_backward, dx, g, y, log);
  return dx;
}

Tensor softmax_impl(const Tensor& x, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  check_input(x, op);
  AllocationScope scope(op);
  const Tensor xc = x.detach().contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel() > 0) CBST_LAYER_DISPATCH(op, x.device(), softmax_forward, y, xc, log);
  return record(op, y, {x}, [yd = y.detach(), log](const Tensor& g) {
    return std::vector<Tensor>{softmax_backward(g, yd, log)};
  });
}

}  // namespace

Tensor softmax(const Tensor& x) { return softmax_impl(x, false); }
Tensor log_softmax(const Tensor& x) { return softmax_impl(x, true); }

}  // namespace cbst
