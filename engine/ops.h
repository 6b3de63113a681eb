// Basic tensor ops. Each has a CPU kernel, a CUDA kernel and autograd; each runs on the
// device of its inputs (all inputs must share one device) and raises an error naming the op
// when that device has no kernel. Binary ops broadcast as numpy/PyTorch do and require equal
// dtypes (convert with `to(dtype)`). Semantics follow the torch function of the same name.
#pragma once

#include <vector>

#include "engine/tensor.h"

namespace cbst {

// ---- element-wise, binary (broadcasting)
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);      // a^b; grad wrt b is a^b·ln a
Tensor maximum(const Tensor& a, const Tensor& b);  // grad goes to the larger (a on ties)
Tensor minimum(const Tensor& a, const Tensor& b);

// ---- element-wise with a scalar
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor pow(const Tensor& a, double exponent);
Tensor rsub(const Tensor& a, double s);  // s - a
Tensor rdiv(const Tensor& a, double s);  // s / a

// ---- element-wise, unary
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor relu(const Tensor& a);  // grad 0 at a <= 0 (as torch)

// ---- comparisons: u8 results (1 true, 0 false), not differentiable
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, double s);
Tensor ne(const Tensor& a, double s);
Tensor lt(const Tensor& a, double s);
Tensor le(const Tensor& a, double s);
Tensor gt(const Tensor& a, double s);
Tensor ge(const Tensor& a, double s);

// where(cond, a, b): cond (u8, nonzero = true) ? a : b, broadcasting all three.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// ---- reductions. `dims` empty = all dims. Negative dims count from the end.
Tensor sum(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
// Maximum over dims (torch.amax): the gradient is shared equally among tied maxima.
Tensor max(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor min(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
// Index (i64) of the first maximum along `dim`; not differentiable.
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim = false);
// Sum of `a` reduced to `shape` (the inverse of broadcasting; used by backward passes).
Tensor sum_to(const Tensor& a, const Shape& shape);

// ---- linear algebra
// (M, K) @ (K, N) -> (M, N), or batched (B, M, K) @ (B, K, N) -> (B, M, N). f32/f64, or
// bf16 @ bf16 -> f32 (mixed precision: exact products, f32 accumulation; the gradients come
// back in bf16, the f32 gradient rounded to bf16 first).
// CPU: OpenBLAS when the build found it, else the built-in blocked GEMM; CUDA: cuBLAS.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- shape
Tensor concat(const std::vector<Tensor>& tensors, int64_t dim);
// Reverses the order of elements along `dim` (torch.flip with one dim); returns a copy.
Tensor flip(const Tensor& a, int64_t dim);
Tensor transpose(const Tensor& a, int64_t d0, int64_t d1);

}  // namespace cbst
