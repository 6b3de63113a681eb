// CPU kernels of the basic ops: the executable specification. Plain loops over strided
// operands, OpenMP across elements; every output element is computed by one thread, so
// results do not depend on the thread count.
#include <cstring>

#include "engine/dispatch.h"
#include "engine/kernel_math.h"

namespace cbst::kern::cpu {

namespace {

constexpr int64_t kParallelGrain = 1 << 15;

// Runs f(i, offset_in_each_operand...) for every linear index of the (shared) sizes.
template <class F>
void for_each_element(int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) f(i);
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
      for_each_element(n, [&](int64_t i) { d[i] = To(s[i]); });
    }
    return;
  }
  for_each_element(n, [&](int64_t i) { d[offset_of(dst, i)] = To(s[offset_of(src, i)]); });
}

}  // namespace

void copy(const TensorArg& dst, const TensorArg& src) {
  CBST_DISPATCH_ALL_TYPES(dst.dtype, "copy", [&] {
    using To = scalar_t;
    CBST_DISPATCH_ALL_TYPES(src.dtype, "copy", [&] { copy_typed<To, scalar_t>(dst, src); });
  });
}

void fill(const TensorArg& dst, double value) {
  CBST_DISPATCH_ALL_TYPES(dst.dtype, "fill", [&] {
    scalar_t* d = static_cast<scalar_t*>(dst.data);
    const scalar_t v = scalar_t(value);
    if (dst.contiguous()) {
      for_each_element(dst.numel(), [&](int64_t i) { d[i] = v; });
    } else {
      for_each_element(dst.numel(), [&](int64_t i) { d[offset_of(dst, i)] = v; });
    }
  });
}

void unary(UnaryOp op, const TensorArg& dst, const TensorArg& src, double scalar) {
  const int64_t n = dst.numel();
  CBST_DISPATCH_ALL_TYPES(src.dtype, "unary", [&] {
    const scalar_t* s = static_cast<const scalar_t*>(src.data);
    if (is_comparison(op)) {
      uint8_t* d = static_cast<uint8_t*>(dst.data);
      for_each_element(n, [&](int64_t i) {
        d[offset_of(dst, i)] = compare_scalar(op, s[offset_of(src, i)], scalar);
      });
      return;
    }
    scalar_t* d = static_cast<scalar_t*>(dst.data);
    if (dst.contiguous() && src.contiguous()) {
      for_each_element(n, [&](int64_t i) { d[i] = apply_unary(op, s[i], scalar); });
    } else {
      for_each_element(n, [&](int64_t i) {
        d[offset_of(dst, i)] = apply_unary(op, s[offset_of(src, i)], scalar);
      });
    }
  });
}

void binary(BinaryOp op, const TensorArg& dst, const TensorArg& a, const TensorArg& b) {
  const int64_t n = dst.numel();
  CBST_DISPATCH_ALL_TYPES(a.dtype, "binary", [&] {
    const scalar_t* pa = static_cast<const scalar_t*>(a.data);
    const scalar_t* pb = static_cast<const scalar_t*>(b.data);
    if (is_comparison(op)) {
      uint8_t* d = static_cast<uint8_t*>(dst.data);
      for_each_element(n, [&](int64_t i) {
        d[offset_of(dst, i)] = compare(op, pa[offset_of(a, i)], pb[offset_of(b, i)]);
      });
      return;
    }
    scalar_t* d = static_cast<scalar_t*>(dst.data);
    if (dst.contiguous() && a.contiguous() && b.contiguous()) {
      for_each_element(n, [&](int64_t i) { d[i] = apply_binary(op, pa[i], pb[i]); });
    } else {
      for_each_element(n, [&](int64_t i) {
        d[offset_of(dst, i)] = apply_binary(op, pa[offset_of(a, i)], pb[offset_of(b, i)]);
      });
    }
  });
}

void where(const TensorArg& dst, const TensorArg& cond, const TensorArg& a, const TensorArg& b) {
  const uint8_t* c = static_cast<const uint8_t*>(cond.data);
  CBST_DISPATCH_ALL_TYPES(a.dtype, "where", [&] {
    const scalar_t* pa = static_cast<const scalar_t*>(a.data);
    const scalar_t* pb = static_cast<const scalar_t*>(b.data);
    scalar_t* d = static_cast<scalar_t*>(dst.data);
    for_each_element(dst.numel(), [&](int64_t i) {
      d[offset_of(dst, i)] = c[offset_of(cond, i)] ? pa[offset_of(a, i)] : pb[offset_of(b, i)];
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
