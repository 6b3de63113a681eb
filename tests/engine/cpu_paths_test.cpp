// The CPU speed paths: OpenBLAS split across OpenMP threads, the merged-dimension walk of
// the element-wise kernels, and the CPU block cache. Each against the plain definition.
#include <gtest/gtest.h>
#include <omp.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "engine/kernels.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "engine/sanitizers.h"
#include "engine/storage.h"
#include "tests/support/expect_close.h"

namespace cbst {
namespace {

std::vector<float> run_gemm(int threads, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                            const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> c(size_t(m * n), 1.0f);
  kern::GemmArgs g;
  g.trans_a = ta, g.trans_b = tb, g.m = m, g.n = n, g.k = k, g.beta = 0.5;
  g.a = a.data(), g.lda = ta ? m : k, g.b = b.data(), g.ldb = tb ? k : n, g.c = c.data(), g.ldc = n;
  const int before = omp_get_max_threads();
  omp_set_num_threads(threads);
  kern::cpu::gemm(g);
  omp_set_num_threads(before);
  return c;
}

// Large enough to be cut into blocks (by columns when wide, by rows when tall; the last, a
// large tall product, goes to OpenBLAS's threads), with edges off the 16-wide tiles; the
// split must not change a single bit, and must be right.
TEST(CpuGemm, SplitAcrossThreadsGivesTheSameBitsAsOneThread) {
  Generator gen(5);
  for (const auto& [m, n, k] : std::vector<std::array<int64_t, 3>>{{37, 1001, 300}, {999, 21, 260}, {64, 4000, 9}, {1500, 70, 600}}) {
    for (int trans = 0; trans < 4; ++trans) {
      const bool ta = trans & 1, tb = trans & 2;
      const std::vector<float> a = rand_uniform({m * k}, -1, 1, DType::f32, Device::cpu(), &gen).to_vector<float>();
      const std::vector<float> b = rand_uniform({k * n}, -1, 1, DType::f32, Device::cpu(), &gen).to_vector<float>();
      const std::vector<float> one = run_gemm(1, ta, tb, m, n, k, a, b);
      const std::vector<float> many = run_gemm(3, ta, tb, m, n, k, a, b);
      EXPECT_EQ(std::memcmp(one.data(), many.data(), one.size() * sizeof(float)), 0)
          << m << "x" << n << "x" << k << " trans " << trans;
      // Spot-check against the definition: C = 0.5·1 + op(A)·op(B).
      for (int64_t i = 0; i < m; i += 7)
        for (int64_t j = 0; j < n; j += 13) {
          double ref = 0.5;
          for (int64_t p = 0; p < k; ++p)
            ref += double(ta ? a[size_t(p * m + i)] : a[size_t(i * k + p)]) *
                   double(tb ? b[size_t(j * k + p)] : b[size_t(p * n + j)]);
          // f32 sums of ≤ 600 products of values in [-1, 1] (partial sums ≲ 25): rounding ≲ 1e-3.
          ASSERT_NEAR(many[size_t(i * n + j)], ref, 1e-3) << i << "," << j;
        }
    }
  }
}

// Broadcast and transposed operands go through the merged-dimension walk; compare with the
// same op on contiguous copies (the element-for-element path).
TEST(CpuElementwise, StridedAndBroadcastOperandsMatchContiguousCopies) {
  Generator gen(6);
  const Tensor x = rand_uniform({3, 5, 7, 9}, -1, 1, DType::f32, Device::cpu(), &gen);
  const Tensor bias = rand_uniform({1, 5, 1, 1}, -1, 1, DType::f32, Device::cpu(), &gen);
  const Tensor xt = x.transpose(1, 3);  // (3, 9, 7, 5), strided
  const Tensor full_bias = add(bias, Tensor::zeros(x.shape())).contiguous();
  EXPECT_TRUE(testing::identical(add(x, bias), add(x, full_bias)));
  EXPECT_TRUE(testing::identical(mul(xt, xt), mul(xt.contiguous(), xt.contiguous())));
  EXPECT_TRUE(testing::identical(gt(xt, 0.25), gt(xt.contiguous(), 0.25)));
  EXPECT_TRUE(testing::identical(relu(xt), relu(xt.contiguous())));
  EXPECT_TRUE(testing::identical(xt.contiguous().transpose(1, 3).contiguous(), x));
  const Tensor w = where(gt(x, 0.0), x, Tensor::zeros({1}));
  const std::vector<float> got = w.to_vector<float>(), in = x.to_vector<float>();
  for (size_t i = 0; i < in.size(); ++i) ASSERT_EQ(got[i], in[i] > 0 ? in[i] : 0.0f) << i;
}

TEST(CpuBlockCache, AFreedBlockServesTheNextAllocationOfItsSize) {
  cpu_cache_release();
  const CpuCacheStats start = cpu_cache_stats();
  // The cache is off by design under AddressSanitizer (so it sees every use after free) and
  // with CBST_CPU_CACHE_MB below the block's size; everywhere else it must be on.
  const char* env = std::getenv("CBST_CPU_CACHE_MB");
#if CBST_ASAN
  const bool off_by_design = true;
#else
  const bool off_by_design = env != nullptr && std::strtoull(env, nullptr, 10) < 2;
#endif
  if (off_by_design) {
    EXPECT_LT(start.limit_bytes, size_t(2) << 20);
    GTEST_SKIP() << "the CPU block cache is off in this build or by CBST_CPU_CACHE_MB";
  }
  ASSERT_GE(start.limit_bytes, size_t(2) << 20);
  void* first = nullptr;
  {
    Storage a(1 << 20, Device::cpu());
    first = a.data();
    std::memset(a.data(), 1, a.nbytes());
  }
  EXPECT_GE(cpu_cache_stats().cached_bytes, size_t(1) << 20);
  Storage b((1 << 20) - 100, Device::cpu());  // same size class
  EXPECT_EQ(b.data(), first);
  EXPECT_EQ(cpu_cache_stats().hits, start.hits + 1);
  Storage c(1 << 20, Device::cpu());  // b is alive: c must be a different block
  EXPECT_NE(c.data(), b.data());
  cpu_cache_release();
  EXPECT_EQ(cpu_cache_stats().cached_bytes, 0u);
}

}  // namespace
}  // namespace cbst
