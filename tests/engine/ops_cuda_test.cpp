// CPU/CUDA parity of every basic op: outputs and all input gradients on seeded inputs.
// Skipped (never passed) without a CUDA device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

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

// Small integers in [-3, 3] as f32: every sum of up to 2^22 of them is exact in f32 whatever
// the order, so the GPU's reductions must equal the CPU's bit for bit.
Tensor small_integers(const Shape& shape, Generator& gen) {
  return rand_uniform(shape, -3.99, 3.99, DType::f32, Device::cpu(), &gen).to(DType::i32).to(DType::f32);
}

// Each element-wise kernel path (engine/cuda/elementwise.cu): contiguous and 16-byte aligned
// with a tail, contiguous but misaligned, broadcast, permuted, narrowed, and through every
// functor (conversion, fill, unary, comparison, binary, select).
TEST(OpsCuda, ElementwiseKernelPathsMatchCpu) {
  CBST_REQUIRE_CUDA();
  Generator gen(19);
  const Device cu = Device::cuda();
  const Tensor a = rand_uniform({4099}, -2, 2, DType::f32, Device::cpu(), &gen);
  const Tensor b = rand_uniform({4099}, -2, 2, DType::f32, Device::cpu(), &gen);
  const Tensor ga = a.to(cu), gb = b.to(cu);
  CBST_EXPECT_CLOSE("aligned add with a tail", add(ga, gb), add(a, b), 0.0, 0.0);
  CBST_EXPECT_CLOSE("aligned relu", relu(ga), relu(a), 0.0, 0.0);
  // narrow(0, 1, ...) starts 4 bytes past an aligned block: the vector path must step aside.
  const Tensor ma = a.narrow(0, 1, 4097), mb = b.narrow(0, 2, 4097);
  CBST_EXPECT_CLOSE("misaligned mul", mul(ga.narrow(0, 1, 4097), gb.narrow(0, 2, 4097)), mul(ma, mb), 0.0, 0.0);
  CBST_EXPECT_CLOSE("misaligned exp", exp(ga.narrow(0, 3, 4096)), exp(a.narrow(0, 3, 4096)), 1e-6, 0.0);
  CBST_EXPECT_CLOSE("misaligned gt", gt(ga.narrow(0, 1, 4097), 0.25), gt(ma, 0.25), 0.0, 0.0);

  const Tensor x = rand_uniform({3, 5, 7, 9}, -1, 1, DType::f32, Device::cpu(), &gen);
  const Tensor bias = rand_uniform({5, 1, 1}, -1, 1, DType::f32, Device::cpu(), &gen);
  const Tensor gx = x.to(cu), gbias = bias.to(cu);
  CBST_EXPECT_CLOSE("bias broadcast", add(gx, gbias), add(x, bias), 0.0, 0.0);
  CBST_EXPECT_CLOSE("row broadcast", sub(gx, gx.narrow(2, 0, 1)), sub(x, x.narrow(2, 0, 1)), 0.0, 0.0);
  CBST_EXPECT_CLOSE("permuted", mul(gx.permute({3, 1, 0, 2}), 3.0), mul(x.permute({3, 1, 0, 2}), 3.0), 0.0, 0.0);
  CBST_EXPECT_CLOSE("permuted contiguous", gx.permute({0, 2, 3, 1}).contiguous(), x.permute({0, 2, 3, 1}).contiguous(), 0.0, 0.0);
  CBST_EXPECT_CLOSE("narrowed compare", lt(gx.narrow(1, 1, 3), gx.narrow(1, 2, 3)), lt(x.narrow(1, 1, 3), x.narrow(1, 2, 3)), 0.0, 0.0);
  const Tensor cond = gt(x, 0.0), gcond = gt(gx, 0.0);
  CBST_EXPECT_CLOSE("where contiguous", where(gcond, gx, neg(gx)), where(cond, x, neg(x)), 0.0, 0.0);
  CBST_EXPECT_CLOSE("where broadcast", where(gcond.narrow(3, 0, 1), gx, gbias), where(cond.narrow(3, 0, 1), x, bias), 0.0, 0.0);

  // Conversions, through the vector path (u8: 16 per load) and the strided one.
  CBST_EXPECT_CLOSE("f32 to f64", gx.to(DType::f64), x.to(DType::f64), 0.0, 0.0);
  CBST_EXPECT_CLOSE("f32 to bf16 and back", gx.to(DType::bf16).to(DType::f32), x.to(DType::bf16).to(DType::f32), 0.0, 0.0);
  CBST_EXPECT_CLOSE("permuted f32 to i64", mul(gx, 10.0).permute({1, 0, 3, 2}).to(DType::i64),
                    mul(x, 10.0).permute({1, 0, 3, 2}).to(DType::i64), 0.0, 0.0);
  const Tensor u = cond.to(DType::u8);
  CBST_EXPECT_CLOSE("u8 add", add(gcond, gcond.permute({0, 1, 3, 2}).contiguous().permute({0, 1, 3, 2})), add(u, u), 0.0, 0.0);

  // Fill: a whole tensor (vector path) and a strided window of one (strided path).
  Tensor f = Tensor::zeros({6, 10}, DType::f32, cu);
  f.narrow(1, 3, 5).fill_(1.5);
  Tensor fc = Tensor::zeros({6, 10});
  fc.narrow(1, 3, 5).fill_(1.5);
  CBST_EXPECT_CLOSE("strided fill", f, fc, 0.0, 0.0);
}

// Each reduction path (engine/cuda/reduce.cu): short rows, one block per row, and few long
// rows cut into pieces with a second pass; ties and NaN across the pieces' borders.
TEST(OpsCuda, ReductionPathsMatchCpuExactly) {
  CBST_REQUIRE_CUDA();
  Generator gen(29);
  const Device cu = Device::cuda();
  for (const Shape& shape : std::vector<Shape>{{1, 3000001}, {5, 200003}, {2000, 1001}, {100003, 19}, {7, 33}}) {
    const Tensor x = small_integers(shape, gen);
    const Tensor g = x.to(cu);
    const std::string s = shape_str(shape);
    CBST_EXPECT_CLOSE("sum " + s, sum(g, {1}), sum(x, {1}), 0.0, 0.0);
    CBST_EXPECT_CLOSE("max " + s, max(g, {1}), max(x, {1}), 0.0, 0.0);
    CBST_EXPECT_CLOSE("min " + s, min(g, {1}), min(x, {1}), 0.0, 0.0);
    // Small integers tie often: the first maximum's column must win, across pieces too.
    CBST_EXPECT_CLOSE("argmax " + s, argmax(g, 1), argmax(x, 1), 0.0, 0.0);
    const Tensor xi = x.to(DType::i64);
    CBST_EXPECT_CLOSE("i64 sum " + s, sum(xi.to(cu), {1}), sum(xi, {1}), 0.0, 0.0);
  }
  // An int32 row whose pieces' sums (8,192 × 300,000 > 2^31) leave int32 while its total (0)
  // does not: the partial results must keep the accumulator's type, as the CPU's sum does.
  std::vector<int32_t> big(3000000, 300000);
  std::fill(big.begin() + 1500000, big.end(), -300000);
  const Tensor bi = Tensor::from_vector<int32_t>(big, {1, 3000000});
  CBST_EXPECT_CLOSE("i32 sum with large pieces", sum(bi.to(cu), {1}), sum(bi, {1}), 0.0, 0.0);
  EXPECT_EQ(sum(bi.to(cu)).to(Device::cpu()).to(DType::i64).item<int64_t>(), 0);
  const Tensor whole = small_integers({4, 1000, 1003}, gen);
  CBST_EXPECT_CLOSE("sum of everything", sum(whole.to(cu)), sum(whole), 0.0, 0.0);
  CBST_EXPECT_CLOSE("sum over dims 0 and 2", sum(whole.to(cu), {0, 2}), sum(whole, {0, 2}), 0.0, 0.0);

  // A constant row: argmax is column 0 however the row is cut. A NaN late in a long row wins
  // max and argmax; of two NaN, the first.
  const Tensor flat = Tensor::full({1, 2000000}, 2.0, DType::f32);
  EXPECT_EQ(argmax(flat.to(cu), 1).item<int64_t>(), 0);
  std::vector<float> v(2000000, 1.0f);
  v[1999990] = std::nanf("");
  v[1500000] = 5.0f;
  const Tensor withnan = Tensor::from_vector<float>(v, {1, 2000000});
  EXPECT_EQ(argmax(withnan.to(cu), 1).item<int64_t>(), 1999990);
  EXPECT_TRUE(std::isnan(max(withnan.to(cu)).item<float>()));
  v[1000001] = std::nanf("");
  EXPECT_EQ(argmax(Tensor::from_vector<float>(v, {1, 2000000}).to(cu), 1).item<int64_t>(), 1000001);
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
