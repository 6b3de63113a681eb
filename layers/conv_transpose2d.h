// conv_transpose2d: the transposed ("fractionally strided") 2-D convolution, i.e. the adjoint
// of conv2d with the same geometry; FCN's learned or bilinear upsampling ("deconvolution").
//
// Same semantics as torch.nn.functional.conv_transpose2d(x, w, b, stride, padding,
// output_padding, groups=1, dilation):
//   y[n, o, i·s − pad + p·d, j·s − pad + q·d] += x[n, c, i, j] · w[c, o, p, q]   (then + b[o])
// keeping only positions inside y.
//   x: (N, Ci, H, W)   w: (Ci, Co, kh, kw)   b: (Co) or undefined   y: (N, Co, Ho, Wo)
//   Ho = (H − 1)·s − 2·pad + d·(kh − 1) + output_padding + 1   (likewise Wo)
// output_padding (extra rows/columns on the bottom/right) must be < stride.
// Backward needs x and w (saved detached). With conv2d's three primitives on this geometry:
//   forward y = conv2d backward-data(dy := x, w);   dx = conv2d forward(dy, w);
//   dw = conv2d backward-filter(dy := x, input := dy);   db[o] = Σ_{n,i,j} dy[n, o, i, j].
// Kernels: conv2d's (conv2d_cpu.cpp: im2col + GEMM; conv2d_cuda.cu: cuDNN).
#pragma once

#include <cstdint>

#include "engine/tensor.h"
#include "layers/module.h"

namespace cbst {

struct ConvTranspose2dOptions {
  int64_t stride = 1;
  int64_t pad = 0;
  int64_t output_padding = 0;
  int64_t dilation = 1;
};

Tensor conv_transpose2d(const Tensor& x,  // (N, Ci, H, W)
                        const Tensor& w,  // (Ci, Co, kh, kw)
                        const Tensor& b,  // (Co) or undefined
                        const ConvTranspose2dOptions& options = {});

// Module options. FCN's ×2 upscore: ConvTranspose2dParams{.in_channels = 21,
// .out_channels = 21, .kernel = 4, .stride = 2, .bias = false, .bilinear = true,
// .trainable = false}.
struct ConvTranspose2dParams {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t kernel = 4;
  int64_t stride = 2;
  int64_t pad = 0;
  int64_t output_padding = 0;
  int64_t dilation = 1;
  bool bias = false;
  bool bilinear = false;  // weight = bilinear_ kernel (FCN) instead of Kaiming normal
  bool trainable = true;  // false: weight and bias do not require grad (FCN's fixed upscore)
  ConvTranspose2dOptions options() const {
    return {.stride = stride, .pad = pad, .output_padding = output_padding, .dilation = dilation};
  }
};

// Parameters: weight (Ci, Co, k, k); bias (Co), zeros, when params.bias.
class ConvTranspose2d : public Module {
 public:
  explicit ConvTranspose2d(const ConvTranspose2dParams& params, DType dtype = DType::f32);
  Tensor forward(const Tensor& x) override;
  const ConvTranspose2dParams& params() const { return params_; }
  Tensor& weight() { return weight_; }
  Tensor& bias() { return bias_; }

 private:
  ConvTranspose2dParams params_;
  Tensor weight_, bias_;
};

}  // namespace cbst
