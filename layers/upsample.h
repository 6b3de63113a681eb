// upsample: bilinear resampling of NCHW maps to any output size.
//
// Same semantics as torch.nn.functional.interpolate(x, size=(Ho, Wo) or scale_factor=s,
// mode='bilinear', align_corners=...). Per axis (rows shown; columns alike), output row i
// reads source coordinate
//   align_corners = false:  src = max(0, (i + ½)·scale − ½),  scale = H/Ho
//                           (scale = 1/s when scale_factor is given, as torch)
//   align_corners = true:   src = i·scale,  scale = (H − 1)/(Ho − 1)  (0 when Ho = 1)
//   h0 = ⌊src⌋, h1 = min(h0 + 1, H − 1), λ = src − h0
//   y[i, j] = (1−λr)(1−λc)·x[h0, w0] + (1−λr)λc·x[h0, w1] + λr(1−λc)·x[h1, w0] + λr λc·x[h1, w1]
//   x: (N, C, H, W) f32/f64   y: (N, C, Ho, Wo)
// The op is linear in x; backward needs only the shapes (nothing saved): dx is the
// transpose, each dy[i, j] spread over its four taps with the same weights.
// The per-axis taps and weights are computed once on the host (double) and shared by both
// backends. CPU backward scatters. CUDA backward gathers: every input element sums, in a
// fixed order, over the output rows/columns that read it (per-axis lists built on the
// host), so it uses no atomics and is deterministic whether or not deterministic() is on.
#pragma once

#include <cstdint>

#include "engine/tensor.h"
#include "layers/module.h"

namespace cbst {

struct UpsampleOptions {
  int64_t height = 0;         // output size; or leave 0 and give scale_factor
  int64_t width = 0;
  double scale_factor = 0.0;  // output = ⌊input · scale_factor⌋ when height/width are 0
  bool align_corners = false;
};

Tensor upsample_bilinear(const Tensor& x,  // (N, C, H, W)
                         const UpsampleOptions& options);

class Upsample : public Module {
 public:
  explicit Upsample(const UpsampleOptions& options) : options_(options) {}
  Tensor forward(const Tensor& x) override { return upsample_bilinear(x, options_); }
  const UpsampleOptions& options() const { return options_; }

 private:
  UpsampleOptions options_;
};

}  // namespace cbst
