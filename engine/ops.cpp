// Op front-ends: argument checks, output allocation, broadcasting, device dispatch, autograd.
// Backward closures run with grad mode off and are written with these same ops, so every
// backward works on every device that has the forward kernels.
#include "engine/ops.h"

#include <algorithm>
#include <numeric>

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "engine/dispatch.h"
#include "engine/tensor_internal.h"

namespace cbst {

using detail::arg;
using kern::BinaryOp;
using kern::ReduceOp;
using kern::UnaryOp;

namespace {

Tensor scalar_like(double v, const Tensor& t) { return Tensor::full({}, v, t.dtype(), t.device()); }
Tensor mask_as(const Tensor& mask, const Tensor& like) { return mask.to(like.dtype()); }

Tensor binary_kernel(BinaryOp op, const char* name, const Tensor& a, const Tensor& b) {
  detail::check_same_device(a, b, name);
  detail::check_same_dtype(a, b, name);
  AllocationScope scope(name);
  const Shape shape = detail::broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = Tensor::empty(shape, kern::is_comparison(op) ? DType::u8 : a.dtype(), a.device());
  CBST_DISPATCH(name, a.device(), binary, op, arg(out),
                arg(detail::broadcast_view(a, shape, name)),
                arg(detail::broadcast_view(b, shape, name)));
  return out;
}

Tensor unary_kernel(UnaryOp op, const char* name, const Tensor& a, double scalar = 0.0) {
  AllocationScope scope(name);
  Tensor out = Tensor::empty(a.shape(), kern::is_comparison(op) ? DType::u8 : a.dtype(), a.device());
  CBST_DISPATCH(name, a.device(), unary, op, arg(out), arg(a), scalar);
  return out;
}

void check_float(const Tensor& a, const char* op) {
  CBST_CHECK(is_floating(a.dtype()), op, " needs a floating-point tensor (f32 or f64), got ",
             a.str(), dtype_hint(a.dtype()));
}

// Sorted, unique, wrapped dims; all dims when empty.
std::vector<int64_t> normalize_dims(std::vector<int64_t> dims, int64_t ndim, const char* op) {
  if (dims.empty()) {
    dims.resize(size_t(ndim));
    std::iota(dims.begin(), dims.end(), 0);
    return dims;
  }
  for (int64_t& d : dims) d = detail::wrap_dim(d, ndim, op);
  std::sort(dims.begin(), dims.end());
  CBST_CHECK(std::adjacent_find(dims.begin(), dims.end()) == dims.end(), op,
             ": a dimension is repeated in the reduction");
  return dims;
}

// Shape after reducing `dims` with keepdim semantics.
Shape reduced_shape(const Shape& s, const std::vector<int64_t>& dims, bool keepdim) {
  Shape out;
  for (int64_t i = 0; i < int64_t(s.size()); ++i) {
    const bool reduced = std::binary_search(dims.begin(), dims.end(), i);
    if (!reduced) out.push_back(s[size_t(i)]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

// Moves the reduced dims last, makes rows contiguous and reduces each row.
Tensor reduce_kernel(ReduceOp op, const char* name, const Tensor& a,
                     const std::vector<int64_t>& dims, bool keepdim) {
  std::vector<int64_t> order;
  int64_t rows = 1, cols = 1;
  for (int64_t i = 0; i < a.dim(); ++i)
    if (!std::binary_search(dims.begin(), dims.end(), i)) {
      order.push_back(i);
      rows *= a.shape()[size_t(i)];
    }
  for (int64_t d : dims) {
    order.push_back(d);
    cols *= a.shape()[size_t(d)];
  }
  AllocationScope scope(name);
  const Tensor src = a.detach().permute(order).contiguous();
  const DType out_type = op == ReduceOp::argmax ? DType::i64 : a.dtype();
  Tensor out = Tensor::empty(reduced_shape(a.shape(), dims, keepdim), out_type, a.device());
  if (cols == 0) {
    CBST_CHECK(op == ReduceOp::sum, name, ": reduction over an empty dimension of shape ",
               shape_str(a.shape()));
    out.fill_(0.0);
    return out;
  }
  CBST_DISPATCH(name, a.device(), reduce_rows, op, out.raw_data(), src.raw_data(), rows, cols,
                a.dtype());
  return out;
}

}  // namespace

// ---- binary

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(BinaryOp::add, "add", a, b);
  return record("add", out, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, sa), sum_to(g, sb)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(BinaryOp::sub, "sub", a, b);
  return record("sub", out, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, sa), sum_to(neg(g), sb)};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(BinaryOp::mul, "mul", a, b);
  return record("mul", out, {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g) {
    return std::vector<Tensor>{sum_to(mul(g, b), a.shape()), sum_to(mul(g, a), b.shape())};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(BinaryOp::div, "div", a, b);
  return record("div", out, {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g) {
    const Tensor ga = div(g, b);
    return std::vector<Tensor>{sum_to(ga, a.shape()), sum_to(neg(mul(ga, div(a, b))), b.shape())};
  });
}

Tensor pow(const Tensor& a, const Tensor& b) {
  check_float(a, "pow");
  Tensor out = binary_kernel(BinaryOp::pow, "pow", a, b);
  return record("pow", out, {a, b},
                [a = a.detach(), b = b.detach(), y = out.detach()](const Tensor& g) {
                  const Tensor ga = mul(mul(g, b), pow(a, sub(b, scalar_like(1.0, b))));
                  const Tensor gb = mul(mul(g, y), log(a));
                  return std::vector<Tensor>{sum_to(ga, a.shape()), sum_to(gb, b.shape())};
                });
}

Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(BinaryOp::maximum, "maximum", a, b);
  return record("maximum", out, {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g) {
    const Tensor take_a = ge(a, b);
    const Tensor zero = scalar_like(0.0, g);
    return std::vector<Tensor>{sum_to(where(take_a, g, zero), a.shape()),
                               sum_to(where(take_a, zero, g), b.shape())};
  });
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(BinaryOp::minimum, "minimum", a, b);
  return record("minimum", out, {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g) {
    const Tensor take_a = le(a, b);
    const Tensor zero = scalar_like(0.0, g);
    return std::vector<Tensor>{sum_to(where(take_a, g, zero), a.shape()),
                               sum_to(where(take_a, zero, g), b.shape())};
  });
}

// ---- scalar

Tensor add(const Tensor& a, double s) {
  Tensor out = unary_kernel(UnaryOp::add_scalar, "add_scalar", a, s);
  return record("add_scalar", out, {a}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor mul(const Tensor& a, double s) {
  Tensor out = unary_kernel(UnaryOp::mul_scalar, "mul_scalar", a, s);
  return record("mul_scalar", out, {a},
                [s](const Tensor& g) { return std::vector<Tensor>{mul(g, s)}; });
}

Tensor pow(const Tensor& a, double exponent) {
  check_float(a, "pow");
  Tensor out = unary_kernel(UnaryOp::pow_scalar, "pow_scalar", a, exponent);
  return record("pow_scalar", out, {a}, [a = a.detach(), exponent](const Tensor& g) {
    return std::vector<Tensor>{mul(mul(g, pow(a, exponent - 1.0)), exponent)};
  });
}

Tensor rsub(const Tensor& a, double s) {
  Tensor out = unary_kernel(UnaryOp::rsub_scalar, "rsub_scalar", a, s);
  return record("rsub_scalar", out, {a},
                [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
}

Tensor rdiv(const Tensor& a, double s) {
  Tensor out = unary_kernel(UnaryOp::rdiv_scalar, "rdiv_scalar", a, s);
  return record("rdiv_scalar", out, {a}, [a = a.detach(), y = out.detach()](const Tensor& g) {
    return std::vector<Tensor>{neg(div(mul(g, y), a))};  // d(s/a) = -s/a² = -y/a
  });
}

// ---- unary

Tensor neg(const Tensor& a) {
  Tensor out = unary_kernel(UnaryOp::neg, "neg", a);
  return record("neg", out, {a}, [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
}

Tensor exp(const Tensor& a) {
  check_float(a, "exp");
  Tensor out = unary_kernel(UnaryOp::exp, "exp", a);
  return record("exp", out, {a}, [y = out.detach()](const Tensor& g) {
    return std::vector<Tensor>{mul(g, y)};
  });
}

Tensor log(const Tensor& a) {
  check_float(a, "log");
  Tensor out = unary_kernel(UnaryOp::log, "log", a);
  return record("log", out, {a}, [a = a.detach()](const Tensor& g) {
    return std::vector<Tensor>{div(g, a)};
  });
}

Tensor sqrt(const Tensor& a) {
  check_float(a, "sqrt");
  Tensor out = unary_kernel(UnaryOp::sqrt, "sqrt", a);
  return record("sqrt", out, {a}, [y = out.detach()](const Tensor& g) {
    return std::vector<Tensor>{div(mul(g, 0.5), y)};
  });
}

Tensor abs(const Tensor& a) {
  Tensor out = unary_kernel(UnaryOp::abs, "abs", a);
  return record("abs", out, {a}, [a = a.detach()](const Tensor& g) {
    const Tensor sign = sub(mask_as(gt(a, 0.0), a), mask_as(lt(a, 0.0), a));
    return std::vector<Tensor>{mul(g, sign)};
  });
}

Tensor relu(const Tensor& a) {
  Tensor out = unary_kernel(UnaryOp::relu, "relu", a);
  return record("relu", out, {a}, [y = out.detach()](const Tensor& g) {
    // One pass: g where y > 0, else 0 (what where(gt(y, 0), g, 0) gives, without its mask).
    return std::vector<Tensor>{binary_kernel(BinaryOp::relu_backward, "relu backward", g, y)};
  });
}

// ---- comparisons

Tensor eq(const Tensor& a, const Tensor& b) { return binary_kernel(BinaryOp::eq, "eq", a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary_kernel(BinaryOp::ne, "ne", a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_kernel(BinaryOp::lt, "lt", a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_kernel(BinaryOp::le, "le", a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_kernel(BinaryOp::gt, "gt", a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_kernel(BinaryOp::ge, "ge", a, b); }
Tensor eq(const Tensor& a, double s) { return unary_kernel(UnaryOp::eq_scalar, "eq", a, s); }
Tensor ne(const Tensor& a, double s) { return unary_kernel(UnaryOp::ne_scalar, "ne", a, s); }
Tensor lt(const Tensor& a, double s) { return unary_kernel(UnaryOp::lt_scalar, "lt", a, s); }
Tensor le(const Tensor& a, double s) { return unary_kernel(UnaryOp::le_scalar, "le", a, s); }
Tensor gt(const Tensor& a, double s) { return unary_kernel(UnaryOp::gt_scalar, "gt", a, s); }
Tensor ge(const Tensor& a, double s) { return unary_kernel(UnaryOp::ge_scalar, "ge", a, s); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  CBST_CHECK(cond.dtype() == DType::u8, "where: the condition must be u8 (as comparisons ",
             "return), got ", cond.str());
  detail::check_same_device(cond, a, "where");
  detail::check_same_device(a, b, "where");
  detail::check_same_dtype(a, b, "where");
  AllocationScope scope("where");
  const Shape shape = detail::broadcast_shapes(
      detail::broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  CBST_DISPATCH("where", a.device(), where, arg(out),
                arg(detail::broadcast_view(cond, shape, "where")),
                arg(detail::broadcast_view(a, shape, "where")),
                arg(detail::broadcast_view(b, shape, "where")));
  return record("where", out, {a, b},
                [c = cond.detach(), sa = a.shape(), sb = b.shape()](const Tensor& g) {
                  const Tensor zero = scalar_like(0.0, g);
                  return std::vector<Tensor>{sum_to(where(c, g, zero), sa),
                                             sum_to(where(c, zero, g), sb)};
                });
}

// ---- reductions

Tensor sum(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  dims = normalize_dims(std::move(dims), a.dim(), "sum");
  Tensor out = reduce_kernel(ReduceOp::sum, "sum", a, dims, keepdim);
  return record("sum", out, {a}, [sa = a.shape(), dims](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(reduced_shape(sa, dims, true)).expand(sa).contiguous()};
  });
}

Tensor mean(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  check_float(a, "mean");
  dims = normalize_dims(std::move(dims), a.dim(), "mean");
  int64_t count = 1;
  for (int64_t d : dims) count *= a.shape()[size_t(d)];
  CBST_CHECK(count > 0, "mean: reduction over an empty dimension of shape ", shape_str(a.shape()));
  return mul(sum(a, dims, keepdim), 1.0 / double(count));
}

static Tensor extremum(ReduceOp op, const char* name, const Tensor& a, std::vector<int64_t> dims,
                       bool keepdim) {
  dims = normalize_dims(std::move(dims), a.dim(), name);
  Tensor out = reduce_kernel(op, name, a, dims, keepdim);
  return record(name, out, {a}, [a = a.detach(), y = out.detach(), dims](const Tensor& g) {
    const Shape kept = reduced_shape(a.shape(), dims, true);
    const Tensor mask = mask_as(eq(a, y.reshape(kept)), a);
    const Tensor count = sum(mask, dims, true);
    return std::vector<Tensor>{mul(mask, div(g.reshape(kept), count))};
  });
}

Tensor max(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  return extremum(ReduceOp::max, "max", a, std::move(dims), keepdim);
}

Tensor min(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  return extremum(ReduceOp::min, "min", a, std::move(dims), keepdim);
}

Tensor argmax(const Tensor& a, int64_t dim, bool keepdim) {
  const int64_t d = detail::wrap_dim(dim, a.dim(), "argmax");
  return reduce_kernel(ReduceOp::argmax, "argmax", a, {d}, keepdim);
}

Tensor sum_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  CBST_CHECK(a.dim() >= int64_t(shape.size()), "sum_to: cannot reduce ", shape_str(a.shape()),
             " to ", shape_str(shape));
  const int64_t lead = a.dim() - int64_t(shape.size());
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < a.dim(); ++i) {
    if (i < lead) {
      dims.push_back(i);
    } else if (shape[size_t(i - lead)] == 1 && a.shape()[size_t(i)] != 1) {
      dims.push_back(i);
    } else {
      CBST_CHECK(shape[size_t(i - lead)] == a.shape()[size_t(i)], "sum_to: cannot reduce ",
                 shape_str(a.shape()), " to ", shape_str(shape));
    }
  }
  if (dims.empty()) return a.reshape(shape);
  return sum(a, dims, true).reshape(shape);
}

// ---- matmul

namespace {
// A matrix operand for GEMM: a row-major view, possibly transposed, without copying when
// the last two dims are contiguous either way.
struct MatrixOperand {
  Tensor t;
  bool trans = false;
  int64_t ld = 0;
  int64_t batch_stride = 0;
};

MatrixOperand matrix_operand(const Tensor& x) {
  const int64_t r = x.dim() - 2, c = x.dim() - 1;
  // Strided-batched GEMM accepts any batch stride, so only the last two dims matter.
  const Shape& st = x.strides();
  const Shape& s = x.shape();
  if (st[size_t(c)] == 1 && st[size_t(r)] >= std::max<int64_t>(s[size_t(c)], 1))
    return {x, false, st[size_t(r)], x.dim() == 3 ? st[0] : 0};
  if (st[size_t(r)] == 1 && st[size_t(c)] >= std::max<int64_t>(s[size_t(r)], 1))
    return {x, true, st[size_t(c)], x.dim() == 3 ? st[0] : 0};
  const Tensor y = x.contiguous();
  return {y, false, std::max<int64_t>(s[size_t(c)], 1), x.dim() == 3 ? s[r] * s[c] : 0};
}
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  detail::check_same_device(a, b, "matmul");
  detail::check_same_dtype(a, b, "matmul");
  const bool mixed = a.dtype() == DType::bf16;
  if (!mixed) check_float(a, "matmul");
  CBST_CHECK((a.dim() == 2 && b.dim() == 2) || (a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0)),
             "matmul: expected (M, K) @ (K, N) or (B, M, K) @ (B, K, N), got ",
             shape_str(a.shape()), " @ ", shape_str(b.shape()));
  CBST_CHECK(a.size(-1) == b.size(-2), "matmul: inner dimensions differ: ", shape_str(a.shape()),
             " @ ", shape_str(b.shape()));
  AllocationScope scope("matmul");
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  const int64_t batch = a.dim() == 3 ? a.size(0) : 1;
  Shape out_shape = a.dim() == 3 ? Shape{batch, m, n} : Shape{m, n};
  Tensor out = Tensor::empty(out_shape, mixed ? DType::f32 : a.dtype(), a.device());
  if (k == 0) {
    out.fill_(0.0);
  } else if (out.numel() > 0) {
    const MatrixOperand A = matrix_operand(a.detach()), B = matrix_operand(b.detach());
    kern::GemmArgs g{.trans_a = A.trans, .trans_b = B.trans, .m = m, .n = n, .k = k,
                     .alpha = 1.0, .beta = 0.0, .a = A.t.raw_data(), .lda = A.ld,
                     .b = B.t.raw_data(), .ldb = B.ld, .c = out.raw_data(), .ldc = n,
                     .batch = batch, .stride_a = A.batch_stride, .stride_b = B.batch_stride,
                     .stride_c = m * n, .dtype = a.dtype()};
    CBST_DISPATCH("matmul", a.device(), gemm, g);
  }
  // bf16: the f32 gradient is rounded to bf16 for the two bf16 GEMMs, whose f32 results are
  // rounded to bf16, the operands' dtype (a cast's backward widens them again).
  return record("matmul", out, {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g_out) {
    const Tensor g = g_out.to(a.dtype());
    return std::vector<Tensor>{matmul(g, b.transpose(-1, -2)).to(a.dtype()),
                               matmul(a.transpose(-1, -2), g).to(a.dtype())};
  });
}

// ---- shape

Tensor transpose(const Tensor& a, int64_t d0, int64_t d1) { return a.transpose(d0, d1); }

Tensor concat(const std::vector<Tensor>& tensors, int64_t dim) {
  CBST_CHECK(!tensors.empty(), "concat: no tensors given");
  const Tensor& first = tensors[0];
  dim = detail::wrap_dim(dim, first.dim(), "concat");
  Shape shape = first.shape();
  shape[size_t(dim)] = 0;
  for (const Tensor& t : tensors) {
    detail::check_same_device(first, t, "concat");
    detail::check_same_dtype(first, t, "concat");
    bool ok = t.dim() == first.dim();
    for (int64_t i = 0; ok && i < t.dim(); ++i)
      ok = i == dim || t.shape()[size_t(i)] == first.shape()[size_t(i)];
    CBST_CHECK(ok, "concat along dimension ", dim, ": shapes ", shape_str(first.shape()), " and ",
               shape_str(t.shape()), " differ outside that dimension");
    shape[size_t(dim)] += t.shape()[size_t(dim)];
  }
  AllocationScope scope("concat");
  Tensor out = Tensor::empty(shape, first.dtype(), first.device());
  std::vector<int64_t> offsets, lengths;
  int64_t offset = 0;
  for (const Tensor& t : tensors) {
    offsets.push_back(offset);
    const int64_t len = t.shape()[size_t(dim)];
    lengths.push_back(len);
    Tensor dst = detail::make_view(out, t.shape(), out.strides(),
                                   out.storage_offset() + offset * out.strides()[size_t(dim)]);
    CBST_DISPATCH("concat", out.device(), copy, arg(dst), arg(t));
    offset += len;
  }
  return record("concat", out, tensors, [offsets, lengths, dim](const Tensor& g) {
    std::vector<Tensor> grads;
    for (size_t i = 0; i < offsets.size(); ++i)
      grads.push_back(g.narrow(dim, offsets[i], lengths[i]).contiguous());
    return grads;
  });
}

Tensor flip(const Tensor& a, int64_t dim) {
  dim = detail::wrap_dim(dim, a.dim(), "flip");
  const int64_t n = a.shape()[size_t(dim)];
  Shape strides = a.strides();
  int64_t offset = a.storage_offset();
  if (n > 0) {
    // A view with a negative stride that starts at the last element, then a copy.
    offset += (n - 1) * strides[size_t(dim)];
    strides[size_t(dim)] = -strides[size_t(dim)];
  }
  AllocationScope scope("flip");
  const Tensor view = detail::make_view(a, a.shape(), strides, offset);
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  CBST_DISPATCH("flip", a.device(), copy, arg(out), arg(view));
  return record("flip", out, {a}, [dim](const Tensor& g) { return std::vector<Tensor>{flip(g, dim)}; });
}

// ---- operators

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double s) { return add(a, s); }
Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }
Tensor operator+(double s, const Tensor& a) { return add(a, s); }
Tensor operator-(double s, const Tensor& a) { return rsub(a, s); }
Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
Tensor operator/(double s, const Tensor& a) { return rdiv(a, s); }
Tensor operator-(const Tensor& a) { return neg(a); }

}  // namespace cbst
