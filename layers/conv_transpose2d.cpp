// conv_transpose2d front-end (argument checks, device dispatch, autograd) and the
// ConvTranspose2d module. The kernels are conv2d's primitives (layers/conv_backend.h).
#include "layers/conv_transpose2d.h"

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "layers/conv_backend.h"

namespace cbst {

Tensor conv_transpose2d(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in,
                        const ConvTranspose2dOptions& o) {
  const char* op = "conv_transpose2d";
  CBST_CHECK(x_in.defined() && w_in.defined(), op, ": input and weight must be defined");
  CBST_CHECK(x_in.dim() == 4, op, ": expected input (N, C, H, W), got ", shape_str(x_in.shape()));
  CBST_CHECK(w_in.dim() == 4, op, ": expected a 4-D weight (Ci, Co, kh, kw), got ",
             shape_str(w_in.shape()));
  CBST_CHECK(x_in.dtype() == DType::f32 || x_in.dtype() == DType::f64 || x_in.dtype() == DType::bf16, op,
             ": needs a floating-point input (f32, f64, or bf16 for mixed precision), got ",
             dtype_name(x_in.dtype()));
  CBST_CHECK(w_in.dtype() == x_in.dtype() && w_in.device() == x_in.device(), op, ": weight ",
             w_in.str(), " does not match input ", x_in.str());
  CBST_CHECK(x_in.size(1) == w_in.size(0), op, ": input has ", x_in.size(1),
             " channels but the weight expects ", w_in.size(0), ": input ",
             shape_str(x_in.shape()), ", weight (Ci, Co, kh, kw) ", shape_str(w_in.shape()));
  if (b_in.defined()) {
    CBST_CHECK(b_in.dim() == 1 && b_in.size(0) == w_in.size(1), op, ": bias ",
               shape_str(b_in.shape()), " does not match the weight's ", w_in.size(1),
               " output channels (weight ", shape_str(w_in.shape()), ")");
    CBST_CHECK(b_in.dtype() == conv_detail::conv_output_dtype(x_in.dtype()) && b_in.device() == x_in.device(),
               op, ": bias ", b_in.str(), " does not match input ", x_in.str(),
               " (a bf16 convolution takes an f32 bias)");
  }
  CBST_CHECK(o.stride >= 1 && o.dilation >= 1 && o.pad >= 0, op, ": stride ", o.stride,
             " and dilation ", o.dilation, " must be >= 1 and pad ", o.pad, " >= 0");
  CBST_CHECK(o.output_padding >= 0 && o.output_padding < o.stride, op, ": output_padding ",
             o.output_padding, " must be in [0, stride ", o.stride, ")");
  auto out_size = [&](int64_t in, int64_t k) {
    return (in - 1) * o.stride - 2 * o.pad + o.dilation * (k - 1) + o.output_padding + 1;
  };
  const int64_t ho = out_size(x_in.size(2), w_in.size(2)), wo = out_size(x_in.size(3), w_in.size(3));
  CBST_CHECK(ho >= 1 && wo >= 1, op, ": input ", shape_str(x_in.shape()), " with weight ",
             shape_str(w_in.shape()), " and pad ", o.pad, " gives an empty output (", ho, "x", wo,
             "); reduce the padding");

  AllocationScope scope(op);
  const conv_detail::ConvGeometry g{.stride = o.stride, .pad = o.pad, .dilation = o.dilation};
  const Tensor x = x_in.detach().contiguous(), w = w_in.detach().contiguous();
  const Tensor b = b_in.defined() ? b_in.detach().contiguous() : Tensor();
  Tensor y = Tensor::empty({x.size(0), w.size(1), ho, wo}, x.dtype(), x.device());
  const Device dev = x.device();
  // y is the input gradient of the convolution y ↦ x. bf16: widened to f32 before the bias.
  if (y.numel() > 0) CBST_CONV_DISPATCH(op, dev, conv_backward_data, y, x, w, g);
  y = y.to(conv_detail::conv_output_dtype(x.dtype()));
  if (y.numel() > 0 && b.defined()) CBST_CONV_DISPATCH(op, dev, add_channel_bias, y, b);

  const bool need_dx = x_in.requires_grad(), need_dw = w_in.requires_grad();
  const bool need_db = b_in.defined() && b_in.requires_grad();
  return record(op, y, {x_in, w_in, b_in}, [x, w, g, need_dx, need_dw, need_db](const Tensor& gy) {
    AllocationScope scope("conv_transpose2d backward");
    const Tensor dy = gy.contiguous();
    const Tensor dy_op = dy.to(x.dtype());  // bf16: rounded once, as conv2d's backward
    const Device d = dy.device();
    Tensor dx, dw, db;
    if (need_dx) {
      dx = Tensor::empty(x.shape(), x.dtype(), d);
      CBST_CONV_DISPATCH("conv_transpose2d backward", d, conv_forward, dx, dy_op, w, g);
    }
    if (need_dw) {
      dw = Tensor::empty(w.shape(), w.dtype(), d);
      CBST_CONV_DISPATCH("conv_transpose2d backward", d, conv_backward_filter, dw, x, dy_op, g);
    }
    if (need_db) {
      db = Tensor::empty({w.size(1)}, dy.dtype(), d);
      CBST_CONV_DISPATCH("conv_transpose2d backward", d, channel_sum, db, dy);
    }
    return std::vector<Tensor>{dx, dw, db};
  });
}

// ---- module

ConvTranspose2d::ConvTranspose2d(const ConvTranspose2dParams& p, DType dtype) : params_(p) {
  CBST_CHECK(p.in_channels >= 1 && p.out_channels >= 1 && p.kernel >= 1,
             "ConvTranspose2d: in_channels ", p.in_channels, ", out_channels ", p.out_channels,
             " and kernel ", p.kernel, " must all be >= 1");
  Tensor w = Tensor::zeros({p.in_channels, p.out_channels, p.kernel, p.kernel}, dtype);
  if (p.bilinear)
    bilinear_(w);
  else
    kaiming_normal_(w);
  register_parameter("weight", &weight_, w, p.trainable);
  if (p.bias) register_parameter("bias", &bias_, Tensor::zeros({p.out_channels}, dtype), p.trainable);
}

Tensor ConvTranspose2d::forward(const Tensor& x) {
  if (precision() == Precision::bf16 && x.dtype() == DType::f32)
    return conv_transpose2d(x.to(DType::bf16), weight_.to(DType::bf16), bias_, params_.options());
  return conv_transpose2d(x, weight_, bias_, params_.options());
}

}  // namespace cbst
