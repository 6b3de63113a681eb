// CPU kernels of the basic ops: the executable specification. Plain loops over strided
// operands, OpenMP across elements; every output element is computed by one thread, so
// results do not depend on the thread count.
//
// Strided operands go through for_each_segment: adjacent dimensions that every operand
// walks as one (contiguous runs, broadcast stride-0 runs) are merged first, so the common
// cases (all contiguous; a (1, C, 1, 1) or 0-d operand against an (N, C, H, W) one) become a
// few long segments with a constant stride per operand, instead of a div/mod per dimension,
// operand and element (which made ReLU's backward a sixth of a VGG training step).
#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <type_traits>

#include "engine/dispatch.h"
#include "engine/kernel_math.h"

namespace cbst::kern::cpu {

namespace {

constexpr int64_t kParallelGrain = 1 << 15;
constexpr int64_t kSegment = 1 << 13;  // elements per work item when a run is long

// Runs f(i, offset_in_each_operand...) for every linear index of the (shared) sizes.
template <class F>
void for_each_element(int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) f(i);
}

// The shared sizes of K operands with dimensions merged where all of them allow it.
template <size_t K>
struct Walk {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[K][kMaxDims] = {};
};

template <size_t K>
Walk<K> merged_walk(const std::array<const TensorArg*, K>& ops) {
  Walk<K> w;
  const TensorArg& shape = *ops[0];
  for (int d = 0; d < shape.ndim; ++d) {
    if (shape.sizes[d] == 1) continue;  // a size-1 dimension never moves any operand
    bool merge = w.ndim > 0;
    for (size_t k = 0; k < K && merge; ++k)
      merge = w.strides[k][w.ndim - 1] == ops[k]->strides[d] * shape.sizes[d];
    if (merge) {
      w.sizes[w.ndim - 1] *= shape.sizes[d];
      for (size_t k = 0; k < K; ++k) w.strides[k][w.ndim - 1] = ops[k]->strides[d];
    } else {
      w.sizes[w.ndim] = shape.sizes[d];
      for (size_t k = 0; k < K; ++k) w.strides[k][w.ndim] = ops[k]->strides[d];
      ++w.ndim;
    }
  }
  if (w.ndim == 0) {  // 0-d, or all sizes 1: one element
    w.ndim = 1;
    w.sizes[0] = 1;
  }
  return w;
}

// f(len, offsets, inner_strides): `len` consecutive elements along the merged last
// dimension, starting at each operand's offset, advancing by its inner stride. Segments
// split long runs so both threads get work even when everything merged into one run.
template <size_t K, class F>
void for_each_segment(const std::array<const TensorArg*, K>& ops, F f) {
  const Walk<K> w = merged_walk(ops);
  const int last = w.ndim - 1;
  const int64_t run = w.sizes[last];
  const int64_t per_run = (run + kSegment - 1) / kSegment;
  int64_t runs = 1;
  for (int d = 0; d < last; ++d) runs *= w.sizes[d];
  const int64_t n = runs * run;
  if (n == 0) return;
  std::array<int64_t, K> inner;
  for (size_t k = 0; k < K; ++k) inner[k] = w.strides[k][last];
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t item = 0; item < runs * per_run; ++item) {
    int64_t r = item / per_run;
    const int64_t start = (item % per_run) * kSegment;
    std::array<int64_t, K> off{};
    for (int d = last - 1; d >= 0; --d) {
      const int64_t i = r % w.sizes[d];
      r /= w.sizes[d];
      for (size_t k = 0; k < K; ++k) off[k] += i * w.strides[k][d];
    }
    for (size_t k = 0; k < K; ++k) off[k] += start * inner[k];
    f(std::min(kSegment, run - start), off, inner);
  }
}

// f(k) with k() a compile-time constant equal to op, so that the switch inside apply_unary /
// apply_binary folds away and each element loop is one straight-line body the compiler can
// vectorise (a run-time op in the loop kept ReLU and add scalar). The arithmetic per element
// is the same, so results do not change. Comparisons go through their own u8 paths.
template <class F>
void with_constant_op(UnaryOp op, F&& f) {
  using U = UnaryOp;
  switch (op) {
    case U::neg: return f(std::integral_constant<U, U::neg>{});
    case U::exp: return f(std::integral_constant<U, U::exp>{});
    case U::log: return f(std::integral_constant<U, U::log>{});
    case U::sqrt: return f(std::integral_constant<U, U::sqrt>{});
    case U::abs: return f(std::integral_constant<U, U::abs>{});
    case U::relu: return f(std::integral_constant<U, U::relu>{});
    case U::add_scalar: return f(std::integral_constant<U, U::add_scalar>{});
    case U::mul_scalar: return f(std::integral_constant<U, U::mul_scalar>{});
    case U::pow_scalar: return f(std::integral_constant<U, U::pow_scalar>{});
    case U::rsub_scalar: return f(std::integral_constant<U, U::rsub_scalar>{});
    case U::rdiv_scalar: return f(std::integral_constant<U, U::rdiv_scalar>{});
    default: break;
  }
  throw Error(std::string("unary: operation ") + std::to_string(int(op)) + " has no element kernel");
}

template <class F>
void with_constant_op(BinaryOp op, F&& f) {
  using B = BinaryOp;
  switch (op) {
    case B::add: return f(std::integral_constant<B, B::add>{});
    case B::sub: return f(std::integral_constant<B, B::sub>{});
    case B::mul: return f(std::integral_constant<B, B::mul>{});
    case B::div: return f(std::integral_constant<B, B::div>{});
    case B::pow: return f(std::integral_constant<B, B::pow>{});
    case B::maximum: return f(std::integral_constant<B, B::maximum>{});
    case B::minimum: return f(std::integral_constant<B, B::minimum>{});
    case B::relu_backward: return f(std::integral_constant<B, B::relu_backward>{});
    default: break;
  }
  throw Error(std::string("binary: operation ") + std::to_string(int(op)) + " has no element kernel");
}

template <class To, class From>
void copy_typed(const TensorArg& dst, const TensorArg& src) {
  To* d = static_cast<To*>(dst.data);
  const From* s = static_cast<const From*>(src.data);
  const int64_t n = dst.numel();
  if (dst.contiguous() && src.contiguous()) {
    if constexpr (std::is_same_v<To, From>) {
      std::memcpy(d, s, size_t(n) * sizeof(To));
    } else {
      for_each_element(n, [&](int64_t i) { d[i] = convert_element<To>(s[i]); });
    }
    return;
  }
  for_each_segment<2>({&dst, &src}, [&](int64_t len, const auto& off, const auto& st) {
    To* o = d + off[0];
    const From* in = s + off[1];
    for (int64_t i = 0; i < len; ++i) o[i * st[0]] = convert_element<To>(in[i * st[1]]);
  });
}

}  // namespace

void copy(const TensorArg& dst, const TensorArg& src) {
  CBST_DISPATCH_STORAGE_TYPES(dst.dtype, "copy", [&] {
    using To = scalar_t;
    CBST_DISPATCH_STORAGE_TYPES(src.dtype, "copy", [&] { copy_typed<To, scalar_t>(dst, src); });
  });
}

void fill(const TensorArg& dst, double value) {
  CBST_DISPATCH_STORAGE_TYPES(dst.dtype, "fill", [&] {
    scalar_t* d = static_cast<scalar_t*>(dst.data);
    const scalar_t v = convert_element<scalar_t>(value);
    if (dst.contiguous()) {
      for_each_element(dst.numel(), [&](int64_t i) { d[i] = v; });
    } else {
      for_each_segment<1>({&dst}, [&](int64_t len, const auto& off, const auto& st) {
        for (int64_t i = 0; i < len; ++i) d[off[0] + i * st[0]] = v;
      });
    }
  });
}

void unary(UnaryOp op, const TensorArg& dst, const TensorArg& src, double scalar) {
  const int64_t n = dst.numel();
  CBST_DISPATCH_ALL_TYPES(src.dtype, "unary", [&] {
    const scalar_t* s = static_cast<const scalar_t*>(src.data);
    if (is_comparison(op)) {
      uint8_t* d = static_cast<uint8_t*>(dst.data);
      for_each_segment<2>({&dst, &src}, [&](int64_t len, const auto& off, const auto& st) {
        uint8_t* o = d + off[0];
        const scalar_t* in = s + off[1];
        for (int64_t i = 0; i < len; ++i) o[i * st[0]] = compare_scalar(op, in[i * st[1]], scalar);
      });
      return;
    }
    scalar_t* d = static_cast<scalar_t*>(dst.data);
    with_constant_op(op, [&](auto k) {
      if (dst.contiguous() && src.contiguous()) {
        for_each_element(n, [&](int64_t i) { d[i] = apply_unary(k(), s[i], scalar); });
      } else {
        for_each_segment<2>({&dst, &src}, [&](int64_t len, const auto& off, const auto& st) {
          scalar_t* o = d + off[0];
          const scalar_t* in = s + off[1];
          for (int64_t i = 0; i < len; ++i) o[i * st[0]] = apply_unary(k(), in[i * st[1]], scalar);
        });
      }
    });
  });
}

void binary(BinaryOp op, const TensorArg& dst, const TensorArg& a, const TensorArg& b) {
  const int64_t n = dst.numel();
  CBST_DISPATCH_ALL_TYPES(a.dtype, "binary", [&] {
    const scalar_t* pa = static_cast<const scalar_t*>(a.data);
    const scalar_t* pb = static_cast<const scalar_t*>(b.data);
    if (is_comparison(op)) {
      uint8_t* d = static_cast<uint8_t*>(dst.data);
      for_each_segment<3>({&dst, &a, &b}, [&](int64_t len, const auto& off, const auto& st) {
        uint8_t* o = d + off[0];
        const scalar_t* x = pa + off[1];
        const scalar_t* y = pb + off[2];
        for (int64_t i = 0; i < len; ++i) o[i * st[0]] = compare(op, x[i * st[1]], y[i * st[2]]);
      });
      return;
    }
    scalar_t* d = static_cast<scalar_t*>(dst.data);
    with_constant_op(op, [&](auto k) {
      if (dst.contiguous() && a.contiguous() && b.contiguous()) {
        for_each_element(n, [&](int64_t i) { d[i] = apply_binary(k(), pa[i], pb[i]); });
      } else {
        for_each_segment<3>({&dst, &a, &b}, [&](int64_t len, const auto& off, const auto& st) {
          scalar_t* o = d + off[0];
          const scalar_t* x = pa + off[1];
          const scalar_t* y = pb + off[2];
          for (int64_t i = 0; i < len; ++i) o[i * st[0]] = apply_binary(k(), x[i * st[1]], y[i * st[2]]);
        });
      }
    });
  });
}

void where(const TensorArg& dst, const TensorArg& cond, const TensorArg& a, const TensorArg& b) {
  const uint8_t* c = static_cast<const uint8_t*>(cond.data);
  CBST_DISPATCH_ALL_TYPES(a.dtype, "where", [&] {
    const scalar_t* pa = static_cast<const scalar_t*>(a.data);
    const scalar_t* pb = static_cast<const scalar_t*>(b.data);
    scalar_t* d = static_cast<scalar_t*>(dst.data);
    for_each_segment<4>({&dst, &cond, &a, &b}, [&](int64_t len, const auto& off, const auto& st) {
      scalar_t* o = d + off[0];
      const uint8_t* m = c + off[1];
      const scalar_t* x = pa + off[2];
      const scalar_t* y = pb + off[3];
      for (int64_t i = 0; i < len; ++i) o[i * st[0]] = m[i * st[1]] ? x[i * st[2]] : y[i * st[3]];
    });
  });
}

// ---- random

void uniform(const TensorArg& dst, double low, double high, uint64_t seed, uint64_t offset) {
  CBST_DISPATCH_FLOAT_TYPES(dst.dtype, "uniform", [&] {
    scalar_t* d = static_cast<scalar_t*>(dst.data);
    for_each_element(dst.numel(), [&](int64_t i) {
      d[i] = scalar_t(random_uniform(seed, offset + uint64_t(i), low, high));
    });
  });
}

void normal(const TensorArg& dst, double mean, double stddev, uint64_t seed, uint64_t offset) {
  CBST_DISPATCH_FLOAT_TYPES(dst.dtype, "normal", [&] {
    scalar_t* d = static_cast<scalar_t*>(dst.data);
    for_each_element(dst.numel(), [&](int64_t i) {
      d[i] = scalar_t(random_normal(seed, offset + uint64_t(i), mean, stddev));
    });
  });
}

void bernoulli(const TensorArg& dst, double p, uint64_t seed, uint64_t offset) {
  CBST_DISPATCH_FLOAT_TYPES(dst.dtype, "bernoulli", [&] {
    scalar_t* d = static_cast<scalar_t*>(dst.data);
    for_each_element(dst.numel(), [&](int64_t i) {
      d[i] = scalar_t(random_bernoulli(seed, offset + uint64_t(i), p));
    });
  });
}

}  // namespace cbst::kern::cpu
