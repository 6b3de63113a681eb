// Helpers shared by the engine's op front-ends (not part of the public API).
#pragma once

#include "engine/kernels.h"
#include "engine/tensor.h"

namespace cbst::detail {

// A view of `t` with new sizes/strides/offset and no autograd history.
Tensor make_view(const Tensor& t, const Shape& sizes, const Shape& strides, int64_t offset);
// `t` broadcast to `shape` as a stride-0 view (no autograd); errors name both shapes.
Tensor broadcast_view(const Tensor& t, const Shape& shape, const char* op);
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);
void check_same_device(const Tensor& a, const Tensor& b, const char* op);
void check_same_dtype(const Tensor& a, const Tensor& b, const char* op);
inline kern::TensorArg arg(const Tensor& t) { return kern::TensorArg::of(t); }

}  // namespace cbst::detail
