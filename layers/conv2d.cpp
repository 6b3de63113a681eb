// conv2d front-end (argument checks, device dispatch, autograd) and the Conv2d module.
#include "layers/conv2d.h"

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "layers/conv_backend.h"

namespace cbst {

namespace {

using conv_detail::ConvGeometry;
using conv_detail::conv_output_dtype;

void check_conv_operands(const char* op, const Tensor& x, const Tensor& w, const Tensor& b,
                         const Conv2dOptions& o) {
  CBST_CHECK(x.defined() && w.defined(), op, ": input and weight must be defined");
  CBST_CHECK(x.dim() == 4, op, ": expected input (N, C, H, W), got ", shape_str(x.shape()));
  CBST_CHECK(w.dim() == 4, op, ": expected a 4-D weight, got ", shape_str(w.shape()));
  CBST_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::f64 || x.dtype() == DType::bf16, op,
             ": needs a floating-point input (f32, f64, or bf16 for mixed precision), got ",
             dtype_name(x.dtype()));
  CBST_CHECK(w.dtype() == x.dtype(), op, ": weight dtype ", dtype_name(w.dtype()),
             " differs from input dtype ", dtype_name(x.dtype()), "; convert one with .to(dtype)");
  CBST_CHECK(w.device() == x.device(), op, ": weight on ", w.device().str(), " but input on ",
             x.device().str(), "; move both with .to(device)");
  if (b.defined()) {
    CBST_CHECK(b.dim() == 1, op, ": expected a 1-D bias, got ", shape_str(b.shape()));
    CBST_CHECK(b.dtype() == conv_output_dtype(x.dtype()) && b.device() == x.device(), op, ": bias ",
               b.str(), " does not match input ", x.str(), " (a bf16 convolution takes an f32 bias)");
  }
  CBST_CHECK(o.stride >= 1 && o.dilation >= 1 && o.pad >= 0, op, ": stride ", o.stride,
             " and dilation ", o.dilation, " must be >= 1 and pad ", o.pad, " >= 0");
}

ConvGeometry geometry(const Conv2dOptions& o) {
  return {.stride = o.stride, .pad = o.pad, .dilation = o.dilation};
}

}  // namespace

Tensor conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, const Conv2dOptions& o) {
  check_conv_operands("conv2d", x_in, w_in, b_in, o);
  CBST_CHECK(x_in.size(1) == w_in.size(1), "conv2d: input has ", x_in.size(1),
             " channels but the weight expects ", w_in.size(1), ": input ",
             shape_str(x_in.shape()), ", weight (Co, Ci, kh, kw) ", shape_str(w_in.shape()));
  if (b_in.defined())
    CBST_CHECK(b_in.size(0) == w_in.size(0), "conv2d: bias ", shape_str(b_in.shape()),
               " does not match the weight's ", w_in.size(0), " output channels (weight ",
               shape_str(w_in.shape()), ")");
  const ConvGeometry g = geometry(o);
  const int64_t ho = conv_detail::conv_out_size(x_in.size(2), w_in.size(2), g);
  const int64_t wo = conv_detail::conv_out_size(x_in.size(3), w_in.size(3), g);
  CBST_CHECK(ho >= 1 && wo >= 1, "conv2d: input ", shape_str(x_in.shape()),
             " is too small for weight ", shape_str(w_in.shape()), " with pad ", o.pad,
             ", dilation ", o.dilation, " (output would be ", ho, "x", wo, ")");

  AllocationScope scope("conv2d");
  const Tensor x = x_in.detach().contiguous(), w = w_in.detach().contiguous();
  const Tensor b = b_in.defined() ? b_in.detach().contiguous() : Tensor();
  const Device dev = x.device();
  // A bf16 convolution writes a bf16 result that is widened to f32 before the bias (in f32).
  Tensor y = Tensor::empty({x.size(0), w.size(0), ho, wo}, x.dtype(), dev);
  if (y.numel() > 0) CBST_CONV_DISPATCH("conv2d", dev, conv_forward, y, x, w, g);
  y = y.to(conv_output_dtype(x.dtype()));
  if (y.numel() > 0 && b.defined()) CBST_CONV_DISPATCH("conv2d", dev, add_channel_bias, y, b);

  const bool need_dx = x_in.requires_grad(), need_dw = w_in.requires_grad();
  const bool need_db = b_in.defined() && b_in.requires_grad();
  return record("conv2d", y, {x_in, w_in, b_in},
                [x, w, g, need_dx, need_dw, need_db, has_bias = b.defined()](const Tensor& gy) {
                  AllocationScope scope("conv2d backward");
                  const Tensor dy = gy.contiguous();
                  // The primitives take dy in the operands' dtype (bf16: rounded once here).
                  const Tensor dy_op = dy.to(x.dtype());
                  const Device d = dy.device();
                  Tensor dx, dw, db;
                  if (need_dx) {
                    dx = Tensor::empty(x.shape(), x.dtype(), d);
                    CBST_CONV_DISPATCH("conv2d backward", d, conv_backward_data, dx, dy_op, w, g);
                  }
                  if (need_dw) {
                    dw = Tensor::empty(w.shape(), w.dtype(), d);
                    CBST_CONV_DISPATCH("conv2d backward", d, conv_backward_filter, dw, dy_op, x, g);
                  }
                  if (need_db && has_bias) {
                    db = Tensor::empty({w.size(0)}, dy.dtype(), d);
                    CBST_CONV_DISPATCH("conv2d backward", d, channel_sum, db, dy);
                  }
                  return std::vector<Tensor>{dx, dw, db};
                });
}

// ---- module

Conv2d::Conv2d(const Conv2dParams& p, DType dtype) : params_(p) {
  CBST_CHECK(p.in_channels >= 1 && p.out_channels >= 1 && p.kernel >= 1,
             "Conv2d: in_channels ", p.in_channels, ", out_channels ", p.out_channels,
             " and kernel ", p.kernel, " must all be >= 1");
  Tensor w = Tensor::empty({p.out_channels, p.in_channels, p.kernel, p.kernel}, dtype);
  if (p.initialize) kaiming_normal_(w);
  else w.zero_();
  register_parameter("weight", &weight_, w);
  if (p.bias) register_parameter("bias", &bias_, Tensor::zeros({p.out_channels}, dtype));
}

Tensor Conv2d::forward(const Tensor& x) {
  if (precision() == Precision::bf16 && x.dtype() == DType::f32)
    return conv2d(x.to(DType::bf16), weight_.to(DType::bf16), bias_, params_.options());
  return conv2d(x, weight_, bias_, params_.options());
}

}  // namespace cbst
