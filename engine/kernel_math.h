// Per-element semantics of the basic ops, shared by the CPU and CUDA kernels so that both
// backends compute exactly the same function (only rounding of transcendental functions can
// differ). Included by kernel sources only.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "engine/kernels.h"
#include "engine/philox.h"

namespace cbst::kern {

// Arithmetic runs in float for f32, double for f64 and the integer types.
template <class T> struct MathType { using type = double; };
template <> struct MathType<float> { using type = float; };

template <class T>
CBST_HOST_DEVICE bool is_nan(T x) { return x != x; }

template <class T>
CBST_HOST_DEVICE T apply_unary(UnaryOp op, T x, double scalar) {
  using M = typename MathType<T>::type;
  const M v = M(x), s = M(scalar);
  switch (op) {
    case UnaryOp::neg: return T(-v);
    case UnaryOp::exp: return T(std::exp(v));
    case UnaryOp::log: return T(std::log(v));
    case UnaryOp::sqrt: return T(std::sqrt(v));
    case UnaryOp::abs: return T(v < M(0) ? -v : v);
    case UnaryOp::relu: return is_nan(v) ? x : T(v > M(0) ? v : M(0));
    case UnaryOp::add_scalar: return T(v + s);
    case UnaryOp::mul_scalar: return T(v * s);
    case UnaryOp::pow_scalar: return T(std::pow(v, s));
    case UnaryOp::rsub_scalar: return T(s - v);
    case UnaryOp::rdiv_scalar: return T(s / v);
    case UnaryOp::eq_scalar: return T(v == s);
    case UnaryOp::ne_scalar: return T(v != s);
    case UnaryOp::lt_scalar: return T(v < s);
    case UnaryOp::le_scalar: return T(v <= s);
    case UnaryOp::gt_scalar: return T(v > s);
    case UnaryOp::ge_scalar: return T(v >= s);
  }
  return x;
}

// Comparisons with a scalar compare in double so that integer thresholds are exact.
template <class T>
CBST_HOST_DEVICE uint8_t compare_scalar(UnaryOp op, T x, double s) {
  const double v = double(x);
  switch (op) {
    case UnaryOp::eq_scalar: return v == s;
    case UnaryOp::ne_scalar: return v != s;
    case UnaryOp::lt_scalar: return v < s;
    case UnaryOp::le_scalar: return v <= s;
    case UnaryOp::gt_scalar: return v > s;
    case UnaryOp::ge_scalar: return v >= s;
    default: return 0;
  }
}

template <class T>
CBST_HOST_DEVICE T apply_binary(BinaryOp op, T a, T b) {
  using M = typename MathType<T>::type;
  const M x = M(a), y = M(b);
  switch (op) {
    case BinaryOp::add: return T(x + y);
    case BinaryOp::sub: return T(x - y);
    case BinaryOp::mul: return T(x * y);
    // Integer division by zero gives 0 instead of trapping (documented in ops.h).
    case BinaryOp::div:
      if constexpr (std::is_integral_v<T>) return y == M(0) ? T(0) : T(a / b);
      else return T(x / y);
    case BinaryOp::pow: return T(std::pow(x, y));
    case BinaryOp::maximum: return is_nan(x) ? a : is_nan(y) ? b : (x >= y ? a : b);
    case BinaryOp::minimum: return is_nan(x) ? a : is_nan(y) ? b : (x <= y ? a : b);
    case BinaryOp::relu_backward: return y > M(0) ? a : T(0);
    default: return a;
  }
}

template <class T>
CBST_HOST_DEVICE uint8_t compare(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::eq: return a == b;
    case BinaryOp::ne: return a != b;
    case BinaryOp::lt: return a < b;
    case BinaryOp::le: return a <= b;
    case BinaryOp::gt: return a > b;
    case BinaryOp::ge: return a >= b;
    default: return 0;
  }
}

// ---- random: element i of a fill uses Philox counter (offset + i).
CBST_HOST_DEVICE double random_uniform(uint64_t seed, uint64_t counter, double low, double high) {
  const Philox4 r = philox4x32(counter, seed);
  const double u = 1.0 - philox_uniform01(r.v[0], r.v[1]);  // [0, 1)
  return low + (high - low) * u;
}

CBST_HOST_DEVICE double random_normal(uint64_t seed, uint64_t counter, double mean, double stddev) {
  const Philox4 r = philox4x32(counter, seed);
  const double u1 = philox_uniform01(r.v[0], r.v[1]);  // (0, 1]: log is finite
  const double u2 = philox_uniform01(r.v[2], r.v[3]);
  // Box-Muller, cosine branch.
  return mean + stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

CBST_HOST_DEVICE double random_bernoulli(uint64_t seed, uint64_t counter, double p) {
  const Philox4 r = philox4x32(counter, seed);
  return (1.0 - philox_uniform01(r.v[0], r.v[1])) < p ? 1.0 : 0.0;
}

}  // namespace cbst::kern
