// softmax_cross_entropy front-end: checks, dispatch, autograd.
#include "layers/softmax_cross_entropy.h"

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "layers/layer_dispatch.h"
#include "layers/softmax_cross_entropy_kernels.h"

namespace cbst {

namespace {

constexpr const char* kOp = "softmax_cross_entropy";

void check_arguments(const Tensor& logits, const Tensor& labels, const Tensor& weights) {
  CBST_CHECK(logits.dim() == 4 || logits.dim() == 2, kOp, ": logits must be (N, C, H, W) or "
             "(N, C), got ", logits.str());
  CBST_CHECK(is_floating(logits.dtype()), kOp, ": logits must be f32 or f64, got ", logits.str());
  CBST_CHECK(labels.dtype() == DType::u8 || labels.dtype() == DType::i32 ||
             labels.dtype() == DType::i64, kOp, ": labels must be u8, i32 or i64, got ",
             labels.str());
  Shape expected = logits.shape();
  expected.erase(expected.begin() + 1);
  CBST_CHECK(labels.shape() == expected, kOp, ": labels ", shape_str(labels.shape()),
             " do not match logits ", shape_str(logits.shape()), " (expected labels ",
             shape_str(expected), ")");
  CBST_CHECK(labels.device() == logits.device(), kOp, ": logits on ", logits.device().str(),
             " but labels on ", labels.device().str(), "; move both with to(device)");
  if (weights.defined()) {
    CBST_CHECK(weights.dim() == 1 && weights.size(0) == logits.size(1), kOp,
               ": class_weights must have shape (C) = [", logits.size(1), "], got ",
               shape_str(weights.shape()));
    CBST_CHECK(weights.dtype() == logits.dtype() && weights.device() == logits.device(), kOp,
               ": class_weights ", weights.str(), " must match the logits' dtype and device (",
               logits.str(), ")");
  }
}

}  // namespace

Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& labels,
                             const CrossEntropyOptions& options) {
  const Tensor weights =
      options.class_weights.defined() ? options.class_weights.detach().contiguous() : Tensor();
  check_arguments(logits, labels, weights);
  AllocationScope scope(kOp);
  const Tensor x = logits.detach().contiguous();
  const Tensor y = labels.contiguous();
  const Device dev = x.device();
  Tensor loss = Tensor::zeros({}, x.dtype(), dev);
  Tensor weight_sum = Tensor::zeros({}, x.dtype(), dev);
  Tensor lse = Tensor::empty({y.numel()}, x.dtype(), dev);
  int64_t bad = layer_kernels::kAllLabelsValid;
  if (y.numel() > 0) {
    CBST_CHECK(x.size(1) > 0, kOp, ": logits have no classes: ", x.str());
    if (dev.is_cuda()) {
#if CBST_WITH_CUDA
      cuda_op_begin(dev);
      bad = layer_kernels::cuda::cross_entropy_forward(loss, weight_sum, lse, x, y, weights,
                                                      options.ignore_index);
      cuda_op_end(kOp);
#else
      throw_no_cuda_build(kOp);
#endif
    } else {
      bad = layer_kernels::cpu::cross_entropy_forward(loss, weight_sum, lse, x, y, weights,
                                                     options.ignore_index);
    }
  }
  if (bad != layer_kernels::kAllLabelsValid)
    CBST_THROW(kOp, ": label value ", bad, " is out of range for ", x.size(1),
               " classes and is not ignore_index (", options.ignore_index,
               "); hint: map the dataset's labels to train ids (0..C-1, ignore = ",
               options.ignore_index, ")");
  return record(kOp, loss, {logits},
                [x, y, weights, lse, weight_sum, ignore = options.ignore_index](const Tensor& g) {
                  AllocationScope bscope("softmax_cross_entropy_backward");
                  Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
                  if (x.numel() > 0) {
                    const Tensor gc = g.contiguous();
                    CBST_LAYER_DISPATCH("softmax_cross_entropy_backward", x.device(),
                                        cross_entropy_backward, dx, gc, x, y, weights, lse,
                                        weight_sum, ignore);
                  }
                  return std::vector<Tensor>{dx};
                });
}

}  // namespace cbst
