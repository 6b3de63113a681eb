// crop: a spatial window of an NCHW map, as FCN's skip layers (Caffe Crop, axis 2).
//
//   y[n, c, i, j] = x[n, c, offset_y + i, offset_x + j],  0 ≤ i < height, 0 ≤ j < width
//   x: (N, C, H, W)   y: (N, C, height, width); the window must lie inside x.
// Same semantics as the slice x[:, :, oy:oy+height, ox:ox+width] in PyTorch (the FCN port
// hard-codes offsets 5, 9 and 31). Backward pads with zeros:
//   dx = 0 everywhere except dx[:, :, oy:oy+height, ox:ox+width] = dy
// Nothing is saved but the input shape. Both directions are strided copies done by the
// engine's copy kernels (Tensor::copy_ on narrowed views), on the CPU and on CUDA alike, so
// there is no crop-specific kernel to keep in sync.
//
// Residual and skip sums need no layer: engine/ops.h `add(a, b)` (or a + b) is
// differentiable, broadcasts, and accumulates into both branches' gradients.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace cbst {

struct CropOptions {
  int64_t height = 0;
  int64_t width = 0;
  int64_t offset_y = 0;
  int64_t offset_x = 0;
};

Tensor crop(const Tensor& x, const CropOptions& options);  // (N, C, H, W) -> (N, C, h, w)

// Crops x to reference's spatial size (H, W of a 4-D reference) at (offset_y, offset_x).
Tensor crop_like(const Tensor& x, const Tensor& reference, int64_t offset_y, int64_t offset_x);

}  // namespace cbst
