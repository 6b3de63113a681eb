// Forward values of the basic ops against brute-force loops.
#include <gtest/gtest.h>

#include <array>
#include <cmath>

#include "engine/kernels.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "tests/support/expect_close.h"

namespace cbst {
namespace {

std::vector<double> host(const Tensor& t) { return t.to(DType::f64).to_vector<double>(); }

TEST(Ops, BroadcastingBinaryOpsMatchALoop) {
  Generator gen(1);
  const Tensor a = rand_uniform({2, 3, 4}, -2, 2, DType::f64, Device::cpu(), &gen);
  const Tensor b = rand_uniform({3, 1}, 0.5, 2, DType::f64, Device::cpu(), &gen);
  const std::vector<double> va = host(a), vb = host(b);
  const std::vector<double> s = host(add(a, b)), d = host(div(a, b)), m = host(maximum(a, b));
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) {
        const size_t o = size_t(i * 12 + j * 4 + k);
        EXPECT_DOUBLE_EQ(s[o], va[o] + vb[size_t(j)]);
        EXPECT_DOUBLE_EQ(d[o], va[o] / vb[size_t(j)]);
        EXPECT_DOUBLE_EQ(m[o], std::max(va[o], vb[size_t(j)]));
      }
}

TEST(Ops, ReductionsMatchALoop) {
  Generator gen(2);
  const Tensor a = rand_uniform({3, 4, 5}, -2, 2, DType::f64, Device::cpu(), &gen);
  const std::vector<double> v = host(a);
  const std::vector<double> s = host(sum(a, {0, 2}));
  const std::vector<double> mx = host(max(a, {1}));
  const std::vector<int64_t> am = argmax(a, 1).to_vector<int64_t>();
  for (int j = 0; j < 4; ++j) {
    double acc = 0;
    for (int i = 0; i < 3; ++i)
      for (int k = 0; k < 5; ++k) acc += v[size_t(i * 20 + j * 5 + k)];
    EXPECT_NEAR(s[size_t(j)], acc, 1e-12);
  }
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 5; ++k) {
      double best = -1e9;
      int64_t arg = -1;
      for (int j = 0; j < 4; ++j)
        if (v[size_t(i * 20 + j * 5 + k)] > best) best = v[size_t(i * 20 + j * 5 + k)], arg = j;
      EXPECT_EQ(mx[size_t(i * 5 + k)], best);
      EXPECT_EQ(am[size_t(i * 5 + k)], arg);
    }
  EXPECT_EQ(sum(a, {1}, true).shape(), (Shape{3, 1, 5}));
  EXPECT_NEAR(mean(a).item<double>(), host(sum(a))[0] / 60.0, 1e-12);
}

TEST(Ops, ArgmaxReturnsTheFirstOfTiedMaxima) {
  const Tensor a = Tensor::from_vector<float>({1, 3, 3, 0, 5, 5, 5, 5}, {2, 4});
  EXPECT_EQ(argmax(a, 1).to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
}

TEST(Ops, MaxSharesTheGradientAmongTies) {
  Tensor a = Tensor::from_vector<double>({2, 2, 1}, {3});
  a.set_requires_grad(true);
  max(a).backward();
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{0.5, 0.5, 0}));
}

TEST(Ops, ComparisonsAndWhere) {
  const Tensor a = Tensor::from_vector<float>({1, 2, 3}, {3});
  const Tensor b = Tensor::from_vector<float>({3, 2, 1}, {3});
  EXPECT_EQ(lt(a, b).to_vector<uint8_t>(), (std::vector<uint8_t>{1, 0, 0}));
  EXPECT_EQ(ge(a, b).to_vector<uint8_t>(), (std::vector<uint8_t>{0, 1, 1}));
  EXPECT_EQ(eq(a, 2.0).to_vector<uint8_t>(), (std::vector<uint8_t>{0, 1, 0}));
  EXPECT_EQ(ne(a, b).to_vector<uint8_t>(), (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(where(gt(a, 1.5), a, b).to_vector<float>(), (std::vector<float>{3, 2, 3}));
  EXPECT_THROW(where(a, a, b), Error);  // condition must be u8
}

TEST(Ops, UnaryAndScalarOps) {
  const Tensor a = Tensor::from_vector<double>({0.25, 1, 4}, {3});
  EXPECT_EQ(host(sqrt(a)), (std::vector<double>{0.5, 1, 2}));
  EXPECT_EQ(host(rdiv(a, 1.0)), (std::vector<double>{4, 1, 0.25}));
  EXPECT_EQ(host(rsub(a, 1.0)), (std::vector<double>{0.75, 0, -3}));
  EXPECT_EQ(host(pow(a, 2.0)), (std::vector<double>{0.0625, 1, 16}));
  EXPECT_EQ(host(relu(Tensor::from_vector<double>({-1, 0, 2}, {3}))), (std::vector<double>{0, 0, 2}));
  EXPECT_NEAR(host(log(exp(a)))[2], 4.0, 1e-12);
  EXPECT_EQ(host(abs(Tensor::from_vector<double>({-1.5, 2}, {2}))), (std::vector<double>{1.5, 2}));
}

TEST(Ops, IntegerDivisionByZeroGivesZeroInsteadOfCrashing) {
  const Tensor a = Tensor::from_vector<int32_t>({7, 8}, {2});
  const Tensor b = Tensor::from_vector<int32_t>({2, 0}, {2});
  EXPECT_EQ(div(a, b).to_vector<int32_t>(), (std::vector<int32_t>{3, 0}));
}

TEST(Ops, FlipReversesOneDimension) {
  const Tensor a = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(flip(a, 1).to_vector<float>(), (std::vector<float>{3, 2, 1, 6, 5, 4}));
  EXPECT_EQ(flip(a, 0).to_vector<float>(), (std::vector<float>{4, 5, 6, 1, 2, 3}));
  EXPECT_EQ(flip(a.transpose(0, 1), 1).to_vector<float>(), (std::vector<float>{4, 1, 5, 2, 6, 3}));
}

TEST(Ops, ConcatPlacesEachInputAtItsOffset) {
  const Tensor a = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  const Tensor b = Tensor::from_vector<float>({5, 6}, {2, 1});
  EXPECT_EQ(concat({a, b}, 1).to_vector<float>(), (std::vector<float>{1, 2, 5, 3, 4, 6}));
  EXPECT_EQ(concat({a, a}, 0).shape(), (Shape{4, 2}));
  EXPECT_THROW(concat({a, b}, 0), Error);
}

// matmul against a triple loop, for the blocked kernel and OpenBLAS, over shapes that
// exercise partial tiles and both transposes.
class GemmImpl : public ::testing::TestWithParam<kern::CpuGemmImpl> {};

TEST_P(GemmImpl, MatmulMatchesATripleLoop) {
  if (GetParam() == kern::CpuGemmImpl::openblas && !kern::cpu_has_openblas())
    GTEST_SKIP() << "built without OpenBLAS";
  kern::set_cpu_gemm_impl(GetParam());
  Generator gen(9);
  for (const auto& [m, k, n] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {5, 7, 3}, {67, 300, 35}, {4, 17, 33}}) {
    for (int trans = 0; trans < 4; ++trans) {
      const bool ta = trans & 1, tb = trans & 2;
      Tensor a = rand_uniform(ta ? Shape{k, m} : Shape{m, k}, -1, 1, DType::f64, Device::cpu(), &gen);
      Tensor b = rand_uniform(tb ? Shape{n, k} : Shape{k, n}, -1, 1, DType::f64, Device::cpu(), &gen);
      const Tensor A = ta ? a.transpose(0, 1) : a, B = tb ? b.transpose(0, 1) : b;
      const std::vector<double> va = host(A.contiguous()), vb = host(B.contiguous());
      std::vector<double> ref(size_t(m * n), 0.0);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j)
          for (int64_t p = 0; p < k; ++p) ref[size_t(i * n + j)] += va[size_t(i * k + p)] * vb[size_t(p * n + j)];
      const Tensor expected = Tensor::from_vector<double>(ref, {m, n});
      CBST_EXPECT_CLOSE("f64 gemm", matmul(A, B), expected, 1e-12, 1e-12);
      // f32: K-term dot products of values in [-1, 1] carry ~K·6e-8 relative error.
      CBST_EXPECT_CLOSE("f32 gemm", matmul(A.to(DType::f32), B.to(DType::f32)), expected, 1e-4, 1e-4);
    }
  }
  kern::set_cpu_gemm_impl(kern::CpuGemmImpl::automatic);
}

INSTANTIATE_TEST_SUITE_P(Cpu, GemmImpl,
                         ::testing::Values(kern::CpuGemmImpl::blocked, kern::CpuGemmImpl::openblas),
                         [](const auto& info) {
                           return info.param == kern::CpuGemmImpl::blocked ? "Blocked" : "OpenBlas";
                         });

TEST(Ops, BatchedMatmulMatchesPerBatchMatmul) {
  Generator gen(4);
  const Tensor a = rand_uniform({3, 4, 5}, -1, 1, DType::f64, Device::cpu(), &gen);
  const Tensor b = rand_uniform({3, 5, 2}, -1, 1, DType::f64, Device::cpu(), &gen);
  const Tensor c = matmul(a, b);
  for (int64_t i = 0; i < 3; ++i)
    CBST_EXPECT_CLOSE("batch", c.select(0, i), matmul(a.select(0, i), b.select(0, i)), 1e-12, 1e-12);
}

}  // namespace
}  // namespace cbst
