// The backend kernel interface: what every device implements for the basic ops.
//
// Internal to cbst (layers use it too); free of CUDA headers. Front-ends in engine/ops.cpp
// check arguments, allocate outputs, broadcast (stride-0 views) and record autograd; kernels
// only compute. A kernel receives every operand as a TensorArg with the *same sizes* (the
// output's); operands may be arbitrary strided views, including stride 0.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace cbst::kern {

struct TensorArg {
  void* data = nullptr;  // first element
  DType dtype = DType::f32;
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};

  static TensorArg of(const Tensor& t);
  int64_t numel() const;
  bool contiguous() const;
};

enum class UnaryOp {
  neg, exp, log, sqrt, abs, relu,
  add_scalar, mul_scalar, pow_scalar, rsub_scalar, rdiv_scalar,
  // comparisons with a scalar: output u8
  eq_scalar, ne_scalar, lt_scalar, le_scalar, gt_scalar, ge_scalar,
};
enum class BinaryOp {
  add, sub, mul, div, pow, maximum, minimum,
  relu_backward,  // a where b > 0, else 0: ReLU's gradient g given its output y (a = g, b = y)
  // comparisons: output u8
  eq, ne, lt, le, gt, ge,
};
enum class ReduceOp { sum, max, min, argmax };

constexpr bool is_comparison(UnaryOp op) { return op >= UnaryOp::eq_scalar; }
constexpr bool is_comparison(BinaryOp op) { return op >= BinaryOp::eq; }

// Row-major GEMM on raw pointers: C = alpha·op(A)·op(B) + beta·C with op(X) = X or Xᵀ;
// A is M×K after op, B is K×N after op; ld* are row strides. `batch` matrices at the given
// element strides between consecutive A, B, C. dtype bf16 (mixed precision): A and B are
// bf16, C is f32, products and sums in f32 (cuBLAS: CUDA_R_16BF, CUBLAS_COMPUTE_32F).
struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  double alpha = 1.0, beta = 0.0;
  const void* a = nullptr;
  int64_t lda = 0;
  const void* b = nullptr;
  int64_t ldb = 0;
  void* c = nullptr;
  int64_t ldc = 0;
  int64_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  DType dtype = DType::f32;
  // CPU: one call, not cut into blocks (the caller has cut the product with gemm_blocks).
  bool whole = false;
};

#define CBST_DECLARE_BACKEND(ns)                                                       \
  namespace ns {                                                                       \
  void copy(const TensorArg& dst, const TensorArg& src); /* converts dtype */          \
  void fill(const TensorArg& dst, double value);                                       \
  void unary(UnaryOp op, const TensorArg& dst, const TensorArg& src, double scalar);   \
  void binary(BinaryOp op, const TensorArg& dst, const TensorArg& a, const TensorArg& b); \
  void where(const TensorArg& dst, const TensorArg& cond, const TensorArg& a,          \
             const TensorArg& b);                                                      \
  /* src: contiguous (rows, cols); dst: contiguous (rows); argmax writes i64 */         \
  void reduce_rows(ReduceOp op, void* dst, const void* src, int64_t rows, int64_t cols, \
                   DType dtype);                                                       \
  void gemm(const GemmArgs& g);                                                        \
  /* Counter-based (Philox4x32-10) random numbers: element i of a fill with (seed,     \
     offset) is the same on every device. dst contiguous, f32 or f64. */               \
  void uniform(const TensorArg& dst, double low, double high, uint64_t seed, uint64_t offset); \
  void normal(const TensorArg& dst, double mean, double stddev, uint64_t seed, uint64_t offset); \
  void bernoulli(const TensorArg& dst, double p, uint64_t seed, uint64_t offset);      \
  }

CBST_DECLARE_BACKEND(cpu)
CBST_DECLARE_BACKEND(cuda)
#undef CBST_DECLARE_BACKEND

// Which CPU GEMM runs: "openblas" or "blocked". Tests and benchmarks select it explicitly.
enum class CpuGemmImpl { automatic, openblas, blocked };
void set_cpu_gemm_impl(CpuGemmImpl impl);
bool cpu_has_openblas();

namespace cpu {
// How the CPU GEMM cuts the `side` (C's longer side) of a product of `work` multiply-adds
// into blocks that the threads share: from the shape alone, so that no result depends on the
// thread count. Convolution's backward-filter cuts dW's columns the same way.
std::vector<std::pair<int64_t, int64_t>> gemm_blocks(int64_t side, double work);
}  // namespace cpu

}  // namespace cbst::kern
