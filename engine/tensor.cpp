#include "engine/tensor.h"

#include <algorithm>
#include <cstring>

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#include "engine/tensor_internal.h"

namespace cbst {

// Shapes come from files (safetensors, MXNet, Caffe headers), so the products are checked:
// a zero dimension makes the count 0 whatever the others are, and an overflow is an error,
// never signed-overflow UB.
int64_t shape_numel(const Shape& s) {
  for (int64_t d : s)
    if (d == 0) return 0;
  int64_t n = 1;
  for (int64_t d : s)
    if (__builtin_mul_overflow(n, d, &n)) CBST_THROW("shape ", shape_str(s), " has more than 2^63 elements");
  return n;
}

// For an empty tensor the strides address nothing; they saturate instead of overflowing
// when its other dimensions are huge.
Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = int64_t(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    if (__builtin_mul_overflow(acc, std::max<int64_t>(s[i], 1), &acc)) {
      if (shape_numel(s) != 0) CBST_THROW("shape ", shape_str(s), " has more than 2^63 elements");
      acc = INT64_MAX;
    }
  }
  return st;
}

namespace detail {

Tensor make_view(const Tensor& t, const Shape& sizes, const Shape& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.impl().storage;
  impl->offset = offset;
  impl->sizes = sizes;
  impl->strides = strides;
  impl->dtype = t.dtype();
  return Tensor(std::move(impl));
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  const int64_t lo = -std::max<int64_t>(ndim, 1), hi = std::max<int64_t>(ndim, 1) - 1;
  CBST_CHECK(dim >= lo && dim <= hi, op, ": dimension ", dim, " is out of range for a tensor of ",
             ndim, " dimension(s)");
  return dim < 0 ? dim + std::max<int64_t>(ndim, 1) : dim;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    CBST_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ",
               shape_str(b), " cannot be broadcast together (dimension ", i, ": ", da, " vs ",
               db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor broadcast_view(const Tensor& t, const Shape& shape, const char* op) {
  CBST_CHECK(int64_t(shape.size()) >= t.dim(), op, ": cannot broadcast ", shape_str(t.shape()),
             " to ", shape_str(shape));
  Shape strides(shape.size(), 0);
  const size_t lead = shape.size() - size_t(t.dim());
  for (size_t i = 0; i < size_t(t.dim()); ++i) {
    const int64_t s = t.shape()[i];
    CBST_CHECK(s == shape[lead + i] || s == 1, op, ": cannot broadcast ", shape_str(t.shape()),
               " to ", shape_str(shape));
    strides[lead + i] = s == 1 && shape[lead + i] != 1 ? 0 : t.strides()[i];
  }
  return make_view(t, shape, strides, t.storage_offset());
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  CBST_CHECK(a.device() == b.device(), op, ": tensors are on different devices (",
             a.device().str(), " and ", b.device().str(), "); move one with .to(device)");
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  CBST_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ (", dtype_name(a.dtype()), " and ",
             dtype_name(b.dtype()), "); convert one with .to(dtype)");
}

}  // namespace detail

using detail::arg;

// ---- factories

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  CBST_CHECK(shape.size() <= size_t(kMaxDims), "tensors have at most ", kMaxDims,
             " dimensions, got shape ", shape_str(shape));
  for (int64_t d : shape) CBST_CHECK(d >= 0, "negative size in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  size_t nbytes = 0;
  if (__builtin_mul_overflow(size_t(shape_numel(shape)), dtype_size(dtype), &nbytes))
    CBST_THROW("shape ", shape_str(shape), " of ", dtype_name(dtype), " needs more than 2^64 bytes");
  impl->storage = std::make_shared<Storage>(nbytes, device, AllocationScope::current());
  impl->sizes = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  NoGradGuard guard;
  t.fill_(value);
  return t;
}
Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}

Tensor Tensor::arange(int64_t n, DType dtype, Device device) {
  std::vector<double> v(size_t(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = double(i);
  return from_vector<double>(v, {n}).to(dtype).to(device);
}

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  CBST_CHECK(int64_t(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
             " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>, Device::cpu());
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return device.is_cpu() ? t : t.to(device);
}

// ---- metadata

int64_t Tensor::size(int64_t d) const { return shape()[size_t(detail::wrap_dim(d, dim(), "size"))]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

std::string Tensor::str() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype())) + shape_str(shape()) + " " + device().str();
}

void* Tensor::raw_data() const {
  return static_cast<char*>(impl().storage->data()) + impl().offset * int64_t(dtype_size(dtype()));
}

template <class T>
T* Tensor::data() const {
  CBST_CHECK(dtype() == dtype_of<T>, "data<", dtype_name(dtype_of<T>), ">() on a ",
             dtype_name(dtype()), " tensor ", shape_str(shape()));
  return static_cast<T*>(raw_data());
}

// ---- conversions

Tensor Tensor::to(Device target) const {
  if (device() == target) return *this;
  AllocationScope scope("to(device)");
  Tensor src = contiguous();
  Tensor out = empty(shape(), dtype(), target);
  copy_bytes(out.raw_data(), target, src.raw_data(), src.device(), nbytes());
  const Device from = device();
  return record("to_device", out, {*this},
                [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}

Tensor Tensor::to(DType target) const {
  if (dtype() == target) return *this;
  Tensor out = empty(shape(), target, device());
  CBST_DISPATCH("to_dtype", device(), copy, arg(out), arg(*this));
  const DType from = dtype();
  return record("to_dtype", out, {*this},
                [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  CBST_DISPATCH("clone", device(), copy, arg(out), arg(*this));
  return record("clone", out, {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor Tensor::detach() const {
  return detail::make_view(*this, shape(), strides(), storage_offset());
}

// ---- views

Tensor Tensor::reshape(const Shape& requested) const {
  Shape s = requested;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      CBST_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(requested));
      infer = int64_t(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    CBST_CHECK(known > 0 && numel() % known == 0, "reshape: cannot reshape ",
               shape_str(shape()), " into ", shape_str(requested));
    s[size_t(infer)] = numel() / known;
  }
  CBST_CHECK(shape_numel(s) == numel(), "reshape: cannot reshape ", shape_str(shape()), " (",
             numel(), " elements) into ", shape_str(requested));
  const Tensor src = contiguous();
  Tensor out = detail::make_view(src, s, contiguous_strides(s), src.storage_offset());
  const Shape in_shape = shape();
  return record("reshape", out, {*this}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(in_shape)};
  });
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  CBST_CHECK(int64_t(dims.size()) == dim(), "permute: ", dims.size(),
             " dims given for a tensor of shape ", shape_str(shape()));
  Shape s(dims.size()), st(dims.size());
  std::vector<int64_t> inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = detail::wrap_dim(dims[i], dim(), "permute");
    CBST_CHECK(inverse[size_t(d)] < 0, "permute: dimension ", d, " repeated");
    inverse[size_t(d)] = int64_t(i);
    s[i] = shape()[size_t(d)];
    st[i] = strides()[size_t(d)];
  }
  Tensor out = detail::make_view(*this, s, st, storage_offset());
  return record("permute", out, {*this}, [inverse](const Tensor& g) {
    return std::vector<Tensor>{g.permute(inverse)};
  });
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  std::vector<int64_t> order(static_cast<size_t>(dim()));
  for (int64_t i = 0; i < dim(); ++i) order[size_t(i)] = i;
  std::swap(order[size_t(detail::wrap_dim(d0, dim(), "transpose"))],
            order[size_t(detail::wrap_dim(d1, dim(), "transpose"))]);
  return permute(order);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = detail::wrap_dim(d, dim(), "narrow");
  CBST_CHECK(start >= 0 && length >= 0 && start + length <= shape()[size_t(d)],
             "narrow: range [", start, ", ", start + length, ") is outside dimension ", d,
             " of shape ", shape_str(shape()));
  Shape s = shape();
  s[size_t(d)] = length;
  Tensor out = detail::make_view(*this, s, strides(), storage_offset() + start * strides()[size_t(d)]);
  const Shape in_shape = shape();
  const DType dt = dtype();
  return record("narrow", out, {*this}, [in_shape, dt, d, start, length](const Tensor& g) {
    Tensor full = Tensor::zeros(in_shape, dt, g.device());
    full.narrow(d, start, length).copy_(g);
    return std::vector<Tensor>{full};
  });
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = detail::wrap_dim(d, dim(), "select");
  const int64_t n = shape()[size_t(d)];
  if (index < 0) index += n;
  CBST_CHECK(index >= 0 && index < n, "select: index ", index, " out of range for dimension ",
             d, " of shape ", shape_str(shape()));
  return narrow(d, index, 1).squeeze(d);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = detail::wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = shape();
  s.insert(s.begin() + d, 1);
  return reshape(s);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = detail::wrap_dim(d, dim(), "squeeze");
  CBST_CHECK(shape()[size_t(d)] == 1, "squeeze: dimension ", d, " of shape ",
             shape_str(shape()), " is not 1");
  Shape s = shape();
  s.erase(s.begin() + d);
  return reshape(s);
}

Tensor Tensor::expand(const Shape& target) const {
  Tensor out = detail::broadcast_view(*this, target, "expand");
  const Shape in_shape = shape();
  return record("expand", out, {*this}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, in_shape)};
  });
}

// ---- in-place

static void check_inplace(const Tensor& t, const char* op) {
  CBST_CHECK(!(t.requires_grad() && grad_enabled()), op,
             ": in-place update of a tensor that requires grad; do it under NoGradGuard");
}

Tensor& Tensor::fill_(double value) {
  check_inplace(*this, "fill_");
  CBST_DISPATCH("fill_", device(), fill, arg(*this), value);
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace(*this, "copy_");
  detail::check_same_device(*this, src, "copy_");
  const Tensor s = detail::broadcast_view(src, shape(), "copy_");
  CBST_DISPATCH("copy_", device(), copy, arg(*this), arg(s));
  return *this;
}

// ---- host access

template <class T>
std::vector<T> Tensor::to_vector() const {
  CBST_CHECK(dtype() == dtype_of<T>, "to_vector<", dtype_name(dtype_of<T>), ">() on a ",
             dtype_name(dtype()), " tensor");
  NoGradGuard guard;
  const Tensor host = to(Device::cpu()).contiguous();
  std::vector<T> v(static_cast<size_t>(numel()));
  if (!v.empty()) std::memcpy(v.data(), host.raw_data(), v.size() * sizeof(T));
  return v;
}

template <class T>
T Tensor::item() const {
  CBST_CHECK(numel() == 1, "item(): tensor of shape ", shape_str(shape()),
             " has ", numel(), " elements, not 1");
  return to_vector<T>()[0];
}

#define CBST_INSTANTIATE(T)                                                                  \
  template Tensor Tensor::from_vector<T>(const std::vector<T>&, const Shape&, Device);      \
  template T* Tensor::data<T>() const;                                                      \
  template std::vector<T> Tensor::to_vector<T>() const;                                     \
  template T Tensor::item<T>() const;
CBST_INSTANTIATE(float)
CBST_INSTANTIATE(double)
CBST_INSTANTIATE(uint8_t)
CBST_INSTANTIATE(int32_t)
CBST_INSTANTIATE(int64_t)
CBST_INSTANTIATE(bf16)
#undef CBST_INSTANTIATE

// ---- TensorArg

namespace kern {
TensorArg TensorArg::of(const Tensor& t) {
  TensorArg a;
  a.data = t.raw_data();
  a.dtype = t.dtype();
  a.ndim = int(t.dim());
  for (int i = 0; i < a.ndim; ++i) {
    a.sizes[i] = t.shape()[size_t(i)];
    a.strides[i] = t.strides()[size_t(i)];
  }
  return a;
}
int64_t TensorArg::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= sizes[i];
  return n;
}
bool TensorArg::contiguous() const {
  int64_t expected = 1;
  for (int i = ndim - 1; i >= 0; --i) {
    if (sizes[i] == 1) continue;
    if (strides[i] != expected) return false;
    expected *= sizes[i];
  }
  return true;
}
}  // namespace kern

}  // namespace cbst
