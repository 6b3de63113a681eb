// crop: checks, copy through engine views, autograd (backward zero-pads).
#include "layers/crop.h"

#include "engine/autograd.h"
#include "engine/cuda_context.h"

namespace cbst {

Tensor crop(const Tensor& x, const CropOptions& o) {
  CBST_CHECK(x.dim() == 4, "crop: needs x of shape (N, C, H, W), got ", x.str());
  CBST_CHECK(o.height >= 0 && o.width >= 0 && o.offset_y >= 0 && o.offset_x >= 0 &&
                 o.offset_y + o.height <= x.size(2) && o.offset_x + o.width <= x.size(3),
             "crop: window ", o.height, "x", o.width, " at (", o.offset_y, ", ", o.offset_x,
             ") does not fit inside x ", shape_str(x.shape()));
  AllocationScope scope("crop");
  Tensor y = Tensor::empty({x.size(0), x.size(1), o.height, o.width}, x.dtype(), x.device());
  y.copy_(x.detach().narrow(2, o.offset_y, o.height).narrow(3, o.offset_x, o.width));
  return record("crop", y, {x}, [o, in_shape = x.shape()](const Tensor& g) {
    AllocationScope bscope("crop_backward");
    Tensor dx = Tensor::zeros(in_shape, g.dtype(), g.device());
    dx.narrow(2, o.offset_y, o.height).narrow(3, o.offset_x, o.width).copy_(g);
    return std::vector<Tensor>{dx};
  });
}

Tensor crop_like(const Tensor& x, const Tensor& reference, int64_t offset_y, int64_t offset_x) {
  CBST_CHECK(reference.dim() == 4, "crop_like: the reference must be (N, C, H, W), got ",
             reference.str());
  return crop(x, {.height = reference.size(2), .width = reference.size(3), .offset_y = offset_y,
                  .offset_x = offset_x});
}

}  // namespace cbst
