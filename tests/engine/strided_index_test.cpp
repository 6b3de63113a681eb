// The element-wise CUDA kernels' index arithmetic (engine/strided_index.h), checked on the CPU
// against plain division and against a direct walk of the strided view.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "engine/random.h"
#include "engine/strided_index.h"

namespace cbst::kern {
namespace {

TEST(DivMod32, EqualsIntegerDivisionForEveryDivisorBelow5000AndEdgeDividends) {
  Generator gen(17);
  for (uint32_t d = 1; d < 5000; ++d) {
    const DivMod32 dm(d);
    std::vector<uint32_t> ns = {0, 1, d - 1, d, d + 1, 2 * d - 1, 2 * d, 0x7fffffffu,
                                0x7fffffffu - 1, 0x7fffffffu / d * d, 0x7fffffffu / d * d - 1};
    for (int k = 0; k < 64; ++k) ns.push_back(uint32_t(gen.next_below(0x80000000ull)));
    for (uint32_t n : ns) ASSERT_EQ(dm.div(n), n / d) << n << " / " << d;
  }
}

TEST(DivMod32, EqualsIntegerDivisionForLargeAndPowerOfTwoDivisors) {
  Generator gen(23);
  std::vector<uint32_t> ds = {0x7fffffffu, 0x40000000u, 0x40000001u, 0x3fffffffu, 65536, 65537,
                              1u << 20, (1u << 20) + 1, 19 * 1024 * 2048};
  for (int k = 0; k < 2000; ++k) ds.push_back(1 + uint32_t(gen.next_below(0x7fffffffull)));
  for (uint32_t d : ds) {
    const DivMod32 dm(d);
    for (uint32_t n : {0u, d - 1, d, 0x7fffffffu}) ASSERT_EQ(dm.div(n), n / d) << n << " / " << d;
    for (int k = 0; k < 50; ++k) {
      const uint32_t n = uint32_t(gen.next_below(0x80000000ull));
      ASSERT_EQ(dm.div(n), n / d) << n << " / " << d;
    }
  }
}

// The offset of element i by the definition: row-major over sizes, innermost dim last.
int64_t direct_offset(const TensorArg& t, int64_t i) {
  int64_t off = 0;
  for (int d = t.ndim - 1; d >= 0; --d) {
    off += (i % t.sizes[d]) * t.strides[d];
    i /= t.sizes[d];
  }
  return off;
}

TensorArg view(std::vector<int64_t> sizes, std::vector<int64_t> strides) {
  TensorArg t;
  t.ndim = int(sizes.size());
  for (int d = 0; d < t.ndim; ++d) {
    t.sizes[d] = sizes[size_t(d)];
    t.strides[d] = strides[size_t(d)];
  }
  return t;
}

void expect_same_offsets(const TensorArg& t, int expected_dims) {
  const StridedOperand o = strided_operand(t);
  EXPECT_EQ(o.ndim, expected_dims);
  for (int64_t i = 0; i < t.numel(); ++i) {
    ASSERT_EQ(o.offset(uint32_t(i)), direct_offset(t, i)) << "element " << i;
    ASSERT_EQ(o.offset(int64_t(i)), direct_offset(t, i)) << "element " << i;
  }
}

TEST(StridedOperand, CoalescesDimsAndKeepsEveryOffset) {
  expect_same_offsets(view({2, 3, 4, 5}, {60, 20, 5, 1}), 1);   // contiguous: one dim
  expect_same_offsets(view({2, 3, 4, 5}, {0, 1, 0, 0}), 3);     // a channel bias broadcast
  expect_same_offsets(view({2, 1, 4, 5}, {20, 7, 5, 1}), 1);    // a size-1 dim's stride is moot
  expect_same_offsets(view({5, 4, 3}, {1, 5, 20}), 3);          // a permutation
  expect_same_offsets(view({4, 3, 5}, {30, 5, 1}), 2);          // a narrowed middle dim
  expect_same_offsets(view({3, 4}, {0, 0}), 1);                 // a broadcast scalar
  expect_same_offsets(view({1, 1}, {0, 0}), 0);                 // one element
  expect_same_offsets(view({2, 3, 2, 3, 2, 2}, {1, 2, 6, 12, 36, 72}), 6);  // six reversed dims
  expect_same_offsets(view({3, 7}, {-7, 1}), 2);                // a negative stride
}

TEST(StridedOperand, RandomViewsOfSixDimsKeepEveryOffset) {
  Generator gen(5);
  for (int trial = 0; trial < 300; ++trial) {
    const int nd = 1 + int(gen.next_below(kMaxDims));
    std::vector<int64_t> sizes(static_cast<size_t>(nd)), strides(static_cast<size_t>(nd));
    int64_t stride = 1;
    for (int d = nd - 1; d >= 0; --d) {
      sizes[size_t(d)] = 1 + int64_t(gen.next_below(4));
      const uint64_t kind = gen.next_below(4);  // contiguous, gapped, broadcast, contiguous
      strides[size_t(d)] = kind == 2 ? 0 : stride;
      stride *= sizes[size_t(d)] + (kind == 1 ? 1 : 0);
    }
    if (gen.next_below(2) == 1 && nd >= 2) {  // swap two dims: a permuted view
      std::swap(sizes[0], sizes[size_t(nd - 1)]);
      std::swap(strides[0], strides[size_t(nd - 1)]);
    }
    const TensorArg t = view(sizes, strides);
    const StridedOperand o = strided_operand(t);
    for (int64_t i = 0; i < t.numel(); ++i)
      ASSERT_EQ(o.offset(uint32_t(i)), direct_offset(t, i)) << "trial " << trial << " element " << i;
  }
}

}  // namespace
}  // namespace cbst::kern
