// Where element i (row-major over the operands' common sizes) of a strided operand lives, for
// the element-wise kernels. Shared by host and device code, so that the CPU tests check the
// same functions the GPU runs.
//
// Two things make it cheap on a GPU:
// - The dims are coalesced on the host: dims of size 1 drop out, and adjacent dims that one
//   stride steps through merge. A contiguous operand keeps one dim; a bias broadcast over
//   (N, C, H, W), strides (0, 1, 0, 0), keeps (N, C, H·W).
// - The dims are stored innermost first and walked with compile-time indices (an unrolled
//   loop that stops at ndim), so the struct stays in the kernel's parameter space. A loop
//   that indexes a by-value kernel argument at run time makes the compiler copy the whole
//   argument into each thread's local memory first: the kernels that took TensorArg did that
//   (224 bytes per thread for one element) and ran 30 times slower than their bandwidth on
//   an H200.
// Below 2^31 elements the division by each dim's size is a multiply-high, an add and a
// shift (DivMod32) instead of a 64-bit division, which the GPU has no instruction for.
#pragma once

#include <cstdint>

#include "engine/kernels.h"
#include "engine/philox.h"  // CBST_HOST_DEVICE

namespace cbst::kern {

// n / d for 0 <= n < 2^31 and 1 <= d < 2^31 by Granlund and Montgomery's round-up method:
// with s = ⌈log2 d⌉ and m = ⌊2^32 (2^s − d) / d⌋ + 1, n / d = (⌊n·m / 2^32⌋ + n) >> s.
// m fits in 32 bits because 2^(s−1) < d; t + n cannot overflow because t <= n < 2^31.
struct DivMod32 {
  uint32_t d = 1, m = 1, s = 0;

  DivMod32() = default;
  explicit DivMod32(uint32_t divisor) : d(divisor) {
    while ((uint64_t(1) << s) < d) ++s;
    m = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << s) - d)) / d + 1);
  }
  CBST_HOST_DEVICE uint32_t div(uint32_t n) const {
#ifdef __CUDA_ARCH__
    const uint32_t t = __umulhi(n, m);
#else
    const uint32_t t = uint32_t((uint64_t(n) * m) >> 32);
#endif
    return (t + n) >> s;
  }
};

// The largest element count for which the 32-bit index path is valid.
constexpr int64_t kMax32BitElements = (int64_t(1) << 31) - 1;

// One operand's dims after coalescing, innermost first.
struct StridedOperand {
  int ndim = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[kMaxDims] = {};
  DivMod32 size32[kMaxDims];  // size[d] as a divisor; meaningful when size[d] < 2^31

  // Element offset of linear index i; Index is uint32_t (i < 2^31) or int64_t.
  template <class Index>
  CBST_HOST_DEVICE int64_t offset(Index i) const {
    int64_t off = 0;
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
    for (int d = 0; d < kMaxDims; ++d) {
      if (d >= ndim) break;
      if constexpr (sizeof(Index) == 4) {
        const uint32_t q = size32[d].div(i);
        off += int64_t(i - q * size32[d].d) * stride[d];
        i = q;
      } else {
        off += (i % size[d]) * stride[d];
        i /= size[d];
      }
    }
    return off;
  }
};

inline StridedOperand strided_operand(const TensorArg& t) {
  int64_t sizes[kMaxDims] = {}, strides[kMaxDims] = {};
  int n = 0;
  for (int d = 0; d < t.ndim; ++d) {  // outermost first
    const int64_t size = t.sizes[d], stride = t.strides[d];
    if (size == 1) continue;
    if (n > 0 && strides[n - 1] == stride * size) {
      sizes[n - 1] *= size;
      strides[n - 1] = stride;
      continue;
    }
    sizes[n] = size;
    strides[n] = stride;
    ++n;
  }
  StridedOperand o;
  o.ndim = n;
  for (int j = 0; j < n; ++j) {
    o.size[j] = sizes[n - 1 - j];
    o.stride[j] = strides[n - 1 - j];
    if (o.size[j] <= kMax32BitElements) o.size32[j] = DivMod32(uint32_t(o.size[j]));
  }
  return o;
}

}  // namespace cbst::kern
