// dropout / dropout2d / ReLU module: statistics, scaling, eval identity, gradients, the
// CPU/CUDA mask agreement.
#include <gtest/gtest.h>

#include "engine/gradcheck.h"
#include "layers/dropout.h"
#include "layers/relu.h"
#include "tests/layers/layer_test_util.h"

namespace cbst {
namespace {

TEST(Dropout, KeepsAboutOneMinusPAndScalesTheSurvivors) {
  Generator gen(7);
  const Tensor x = Tensor::ones({100000});
  const std::vector<float> y = dropout(x, {.p = 0.3}, &gen).to_vector<float>();
  int64_t kept = 0;
  for (float v : y) {
    ASSERT_TRUE(v == 0.0f || std::abs(v - 1.0f / 0.7f) < 1e-6f) << v;
    kept += v != 0.0f;
  }
  // Binomial(1e5, 0.7): std ≈ 145, so ±1000 is about 7 sigma.
  EXPECT_NEAR(double(kept), 70000.0, 1000.0);
}

TEST(Dropout, EvalAndZeroPAreTheIdentityAndPOneZeroes) {
  const Tensor x = testing::random_input({3, 4}, 1);
  EXPECT_TRUE(dropout(x, {.p = 0.5, .training = false}).same(x));
  EXPECT_TRUE(dropout(x, {.p = 0.0}).same(x));
  for (double v : dropout(x, {.p = 1.0}).to_vector<double>()) EXPECT_EQ(v, 0.0);
  EXPECT_THROW(dropout(x, {.p = 1.5}), Error);
}

TEST(Dropout, SameGeneratorStateGivesTheSameMaskAndTheMaskMatchesBernoulli) {
  const Tensor x = Tensor::ones({257}, DType::f64);
  Generator a(42), b(42), c(42);
  const std::vector<double> ya = dropout(x, {.p = 0.4}, &a).to_vector<double>();
  EXPECT_EQ(ya, dropout(x, {.p = 0.4}, &b).to_vector<double>());
  EXPECT_EQ(a.offset(), 257u);  // one counter per element
  const std::vector<double> keep = bernoulli({257}, 0.6, DType::f64, Device::cpu(), &c).to_vector<double>();
  for (size_t i = 0; i < keep.size(); ++i) EXPECT_EQ(ya[i] != 0.0, keep[i] != 0.0) << i;
  // Consecutive calls draw fresh masks.
  EXPECT_NE(ya, dropout(x, {.p = 0.4}, &a).to_vector<double>());
}

TEST(Dropout, BackwardUsesTheForwardMask) {
  Generator gen(3);
  Tensor x = testing::random_input({4, 5}, 2);
  const Tensor y = dropout(x, {.p = 0.5}, &gen);
  y.backward(Tensor::ones({4, 5}, DType::f64));
  const std::vector<double> yv = y.to_vector<double>(), xv = x.to_vector<double>();
  const std::vector<double> g = x.grad().to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) EXPECT_EQ(g[i], yv[i] != 0.0 ? 2.0 : 0.0) << i;
  // With a fixed generator state per call, dropout is linear in x: gradcheck applies.
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& v) {
        Generator fixed(11);
        return dropout(v[0], {.p = 0.3}, &fixed);
      },
      {x}, testing::fd_options(1e-6, 1e-6));
  EXPECT_TRUE(r.ok) << r.report;
}

TEST(Dropout, Dropout2dZeroesWholeChannels) {
  Generator gen(5);
  const Tensor x = Tensor::ones({4, 16, 3, 3});
  const std::vector<float> y = dropout2d(x, 0.5, true, &gen).to_vector<float>();
  EXPECT_EQ(gen.offset(), 64u);  // one counter per (n, c)
  for (int64_t ch = 0; ch < 64; ++ch)
    for (int64_t k = 1; k < 9; ++k) EXPECT_EQ(y[size_t(ch * 9 + k)], y[size_t(ch * 9)]);
}

TEST(Dropout, ModuleFollowsTrainAndEval) {
  Generator gen(9);
  Dropout drop({.p = 0.5}, &gen);
  const Tensor x = Tensor::ones({1000});
  EXPECT_GT(sum(eq(drop(x), 0.0).to(DType::f32)).item<float>(), 300.0f);
  drop.eval();
  EXPECT_TRUE(drop(x).same(x));
}

TEST(ReLU, ModuleAppliesEngineRelu) {
  ReLU r;
  const Tensor x = Tensor::from_vector<float>({-1, 0, 2}, {3});
  EXPECT_EQ(r(x).to_vector<float>(), (std::vector<float>{0, 0, 2}));
  EXPECT_TRUE(r.named_parameters().empty());
}

TEST(DropoutCuda, SameMaskAndGradientsAsCpu) {
  CBST_REQUIRE_CUDA();
  const Tensor x = testing::random_input({2, 8, 13, 7}, 4, -1, 1, DType::f32);
  for (bool channelwise : {false, true})
    // The same Philox counters on both devices: masks identical, values exact.
    testing::expect_cuda_matches_cpu(
        channelwise ? "dropout2d" : "dropout",
        [&](const auto& v) {
          Generator gen(21);
          return dropout(v[0], {.p = 0.35, .channelwise = channelwise}, &gen);
        },
        {x}, {.atol = 0, .rtol = 0});
}

}  // namespace
}  // namespace cbst
