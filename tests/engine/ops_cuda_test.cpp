// CPU/CUDA parity of every basic op: outputs and all input gradients on seeded inputs.
// Skipped (never passed) without a CUDA device.
#include <gtest/gtest.h>

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "tests/engine/op_cases.h"
#include "tests/support/expect_close.h"

namespace cbst {
namespace {

struct RunResult {
  Tensor out;
  std::vector<Tensor> grads;
};

RunResult run(const testing::OpCase& c, Device device) {
  std::vector<Tensor> xs = testing::make_inputs(c, DType::f32, 7);
  for (Tensor& x : xs) {
    const bool g = x.requires_grad();
    x = x.detach().to(device);
    if (g) x.set_requires_grad(true);
  }
  RunResult r;
  r.out = c.fn(xs);
  Generator gen(3);
  const Tensor weights = rand_uniform(r.out.shape(), -1, 1, DType::f32, Device::cpu(), &gen).to(device);
  sum(mul(r.out, weights)).backward();
  for (const Tensor& x : xs) r.grads.push_back(x.requires_grad() ? x.grad() : Tensor());
  return r;
}

class OpCuda : public ::testing::TestWithParam<testing::OpCase> {};

TEST_P(OpCuda, MatchesCpuForwardAndBackward) {
  CBST_REQUIRE_CUDA();
  const testing::OpCase& c = GetParam();
  const RunResult cpu = run(c, Device::cpu());
  const RunResult gpu = run(c, Device::cuda());
  // f32 on both sides; the GPU sums in a different order and matmul may use TF32, hence
  // the loose matmul tolerance (TF32 keeps 10 mantissa bits: ~1e-3 relative).
  const bool tf32 = c.name.rfind("matmul", 0) == 0;
  const testing::Tolerance tol = tf32 ? testing::Tolerance{2e-2, 1e-2} : testing::Tolerance{1e-5, 1e-5};
  EXPECT_TRUE(testing::close_result(c.name + " out", gpu.out, cpu.out, tol));
  for (size_t i = 0; i < cpu.grads.size(); ++i) {
    if (!cpu.grads[i].defined()) continue;
    EXPECT_TRUE(testing::close_result(c.name + " grad" + std::to_string(i), gpu.grads[i], cpu.grads[i], tol));
  }
}

INSTANTIATE_TEST_SUITE_P(Engine, OpCuda, ::testing::ValuesIn(testing::op_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(OpsCuda, ComparisonsArgmaxAndIntegerOpsMatchCpu) {
  CBST_REQUIRE_CUDA();
  Generator gen(11);
  const Tensor a = rand_uniform({5, 7}, -3, 3, DType::f32, Device::cpu(), &gen);
  const Tensor b = rand_uniform({7}, -3, 3, DType::f32, Device::cpu(), &gen);
  const Device cu = Device::cuda();
  CBST_EXPECT_CLOSE("lt", lt(a.to(cu), b.to(cu)), lt(a, b), 0.0, 0.0);
  CBST_EXPECT_CLOSE("ge_scalar", ge(a.to(cu), 0.5), ge(a, 0.5), 0.0, 0.0);
  CBST_EXPECT_CLOSE("argmax", argmax(a.to(cu), 1), argmax(a, 1), 0.0, 0.0);
  CBST_EXPECT_CLOSE("argmax0", argmax(a.to(cu), 0, true), argmax(a, 0, true), 0.0, 0.0);
  const Tensor ia = a.to(DType::i64), ib = b.to(DType::i32);
  CBST_EXPECT_CLOSE("int add", add(ia.to(cu), ia.to(cu)), add(ia, ia), 0.0, 0.0);
  CBST_EXPECT_CLOSE("int sum", sum(ib.to(cu)), sum(ib), 0.0, 0.0);
  CBST_EXPECT_CLOSE("u8 cast", a.to(DType::u8).to(cu).to(DType::f32), a.to(DType::u8).to(DType::f32), 0.0, 0.0);
  Tensor big = rand_uniform({3, 100000}, -1, 1, DType::f32, Device::cpu(), &gen);
  // The GPU sums 100000 f32 values in a tree (error ~ √n·ε·Σ|x| ≈ 316·6e-8·5e4 ≈ 1e-3);
  // the CPU accumulates in double.
  CBST_EXPECT_CLOSE("large sum", sum(big.to(cu), {1}), sum(big, {1}), 1e-2, 1e-5);
  CBST_EXPECT_CLOSE("large max", max(big.to(cu), {1}), max(big, {1}), 0.0, 0.0);
}

TEST(OpsCuda, FillCopyAndStridedViewsMatchCpu) {
  CBST_REQUIRE_CUDA();
  Generator gen(5);
  const Tensor a = rand_uniform({4, 6, 5}, -1, 1, DType::f32, Device::cpu(), &gen);
  const Tensor g = a.to(Device::cuda());
  CBST_EXPECT_CLOSE("permute contiguous", g.permute({2, 0, 1}).contiguous(), a.permute({2, 0, 1}).contiguous(), 0.0, 0.0);
  Tensor z = Tensor::zeros({4, 6, 5}, DType::f32, Device::cuda());
  z.narrow(1, 2, 3).copy_(g.narrow(1, 0, 3));
  Tensor zc = Tensor::zeros({4, 6, 5});
  zc.narrow(1, 2, 3).copy_(a.narrow(1, 0, 3));
  CBST_EXPECT_CLOSE("strided copy_", z, zc, 0.0, 0.0);
  CBST_EXPECT_CLOSE("fill", Tensor::full({3, 3}, 2.5, DType::f64, Device::cuda()), Tensor::full({3, 3}, 2.5, DType::f64), 0.0, 0.0);
}

TEST(RandomCuda, SameSeedGivesTheSameNumbersAsTheCpu) {
  CBST_REQUIRE_CUDA();
  Generator g1(123), g2(123);
  CBST_EXPECT_CLOSE("uniform", rand_uniform({1000}, -1, 1, DType::f32, Device::cuda(), &g1),
                    rand_uniform({1000}, -1, 1, DType::f32, Device::cpu(), &g2), 0.0, 0.0);
  // Box-Muller uses log/cos, whose last bit may differ between the two math libraries.
  CBST_EXPECT_CLOSE("normal", randn({1000}, 0, 1, DType::f64, Device::cuda(), &g1),
                    randn({1000}, 0, 1, DType::f64, Device::cpu(), &g2), 1e-12, 1e-12);
  CBST_EXPECT_CLOSE("bernoulli", bernoulli({1000}, 0.3, DType::f32, Device::cuda(), &g1),
                    bernoulli({1000}, 0.3, DType::f32, Device::cpu(), &g2), 0.0, 0.0);
}

TEST(AllocatorCuda, ReusesFreedBlocksAndReportsPeak) {
  CBST_REQUIRE_CUDA();
  cuda_reset_peak_memory(0);
  const size_t before = cuda_memory_stats(0).reserved;
  for (int i = 0; i < 10; ++i) {
    Tensor t = Tensor::empty({1 << 20}, DType::f32, Device::cuda());
  }
  const CudaMemoryStats s = cuda_memory_stats(0);
  EXPECT_LE(s.reserved - before, size_t(8) << 20) << "10 same-size allocations must reuse one block";
  EXPECT_GE(s.peak_allocated, size_t(4) << 20);
}

TEST(AllocatorCuda, OutOfMemoryNamesTheRequestAndSuggestsAFix) {
  CBST_REQUIRE_CUDA();
  try {
    Tensor t = Tensor::empty({int64_t(1) << 40}, DType::f32, Device::cuda());
    FAIL() << "4 TiB allocation succeeded";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("out of memory"), std::string::npos) << m;
    EXPECT_NE(m.find("MiB free"), std::string::npos) << m;
    EXPECT_NE(m.find("smaller crop"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace cbst
