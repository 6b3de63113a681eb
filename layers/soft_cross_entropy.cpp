// soft_cross_entropy front-end: checks, dispatch, autograd.
#include "layers/soft_cross_entropy.h"

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "layers/layer_dispatch.h"
#include "layers/soft_cross_entropy_kernels.h"

namespace cbst {

namespace {
constexpr const char* kOp = "soft_cross_entropy";
}  // namespace

Tensor soft_cross_entropy(const Tensor& logits, const Tensor& targets) {
  CBST_CHECK(logits.defined() && targets.defined(), kOp, ": logits and targets must be defined");
  CBST_CHECK(logits.dim() == 4 || logits.dim() == 2, kOp, ": logits must be (N, C, H, W) or "
             "(N, C), got ", logits.str());
  CBST_CHECK(is_floating(logits.dtype()), kOp, ": logits must be f32 or f64, got ", logits.str());
  CBST_CHECK(targets.shape() == logits.shape(), kOp, ": targets ", shape_str(targets.shape()),
             " do not match logits ", shape_str(logits.shape()));
  CBST_CHECK(targets.dtype() == logits.dtype() && targets.device() == logits.device(), kOp,
             ": targets ", targets.str(), " must match the logits' dtype and device (",
             logits.str(), ")");
  AllocationScope scope(kOp);
  const Tensor x = logits.detach().contiguous();
  const Tensor t = targets.detach().contiguous();
  const Device dev = x.device();
  const int64_t pixels = x.size(0) * (x.dim() == 4 ? x.size(2) * x.size(3) : 1);
  Tensor loss = Tensor::zeros({}, x.dtype(), dev);
  Tensor valid = Tensor::zeros({}, x.dtype(), dev);
  Tensor lse = Tensor::empty({pixels}, x.dtype(), dev);
  if (x.numel() > 0)
    CBST_LAYER_DISPATCH(kOp, dev, soft_cross_entropy_forward, loss, valid, lse, x, t);
  return record(kOp, loss, {logits}, [x, t, lse, valid](const Tensor& g) {
    AllocationScope bscope("soft_cross_entropy_backward");
    Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
    if (x.numel() > 0) {
      const Tensor gc = g.contiguous();
      CBST_LAYER_DISPATCH("soft_cross_entropy_backward", x.device(), soft_cross_entropy_backward,
                          dx, gc, x, t, lse, valid);
    }
    return std::vector<Tensor>{dx};
  });
}

}  // namespace cbst
