// dropout front-end: checks, counter reservation, dispatch, autograd; the Dropout module.
#include "layers/dropout.h"

#include <algorithm>

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "engine/ops.h"
#include "layers/dropout_kernels.h"
#include "layers/layer_dispatch.h"

namespace cbst {

Tensor dropout(const Tensor& x, const DropoutOptions& o, Generator* gen) {
  CBST_CHECK(o.p >= 0.0 && o.p <= 1.0, "dropout: p must be in [0, 1], got ", o.p);
  CBST_CHECK(is_floating(x.dtype()), "dropout: needs f32 or f64, got ", x.str());
  if (!o.training || o.p == 0.0) return x;
  if (o.p == 1.0) return mul(x, 0.0);
  CBST_CHECK(!o.channelwise || x.dim() >= 2, "dropout2d: needs (N, C, ...), got ", x.str());
  const int64_t group = o.channelwise ? x.numel() / std::max<int64_t>(x.size(0) * x.size(1), 1) : 1;
  const int64_t entries = group > 0 ? x.numel() / group : 0;
  Generator& g = gen ? *gen : default_generator();
  const uint64_t offset = g.advance_batch_slice(uint64_t(entries));
  AllocationScope scope("dropout");
  const Tensor xc = x.detach().contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mask = Tensor::empty({entries}, DType::u8, x.device());
  if (x.numel() > 0)
    CBST_LAYER_DISPATCH("dropout", x.device(), dropout_forward, y, mask, xc, o.p, group, g.seed(), offset);
  return record("dropout", y, {x}, [mask, p = o.p, group](const Tensor& grad) {
    AllocationScope bscope("dropout_backward");
    Tensor dx = Tensor::empty(grad.shape(), grad.dtype(), grad.device());
    const Tensor gc = grad.contiguous();
    if (gc.numel() > 0)
      CBST_LAYER_DISPATCH("dropout_backward", grad.device(), dropout_backward, dx, gc, mask, p, group);
    return std::vector<Tensor>{dx};
  });
}

Tensor Dropout::forward(const Tensor& x) {
  DropoutOptions o = options_;
  o.training = training();
  return dropout(x, o, gen_);
}

}  // namespace cbst
