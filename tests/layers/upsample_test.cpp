// upsample_bilinear: hand-computed values, torch's coordinate rules, gradients, parity.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>

#include <cmath>

#include "engine/gradcheck.h"
#include "layers/upsample.h"
#include "tests/layers/layer_test_util.h"

namespace cbst {
namespace {

using testing::random_input;

// torch's bilinear rule written directly (one output element).
double reference(const std::vector<double>& x, int64_t h, int64_t w, int64_t ho, int64_t wo,
                 int64_t i, int64_t j, bool align) {
  auto coord = [&](int64_t out_i, int64_t in, int64_t out, int64_t& lo, int64_t& hi) {
    double src;
    if (align) src = out > 1 ? double(out_i) * double(in - 1) / double(out - 1) : 0.0;
    else src = std::max(0.0, (double(out_i) + 0.5) * double(in) / double(out) - 0.5);
    lo = std::min<int64_t>(int64_t(std::floor(src)), in - 1);
    hi = std::min<int64_t>(lo + 1, in - 1);
    return src - double(lo);
  };
  int64_t r0, r1, c0, c1;
  const double a = coord(i, h, ho, r0, r1), b = coord(j, w, wo, c0, c1);
  auto at = [&](int64_t r, int64_t c) { return x[size_t(r * w + c)]; };
  return (1 - a) * ((1 - b) * at(r0, c0) + b * at(r0, c1)) + a * ((1 - b) * at(r1, c0) + b * at(r1, c1));
}

TEST(Upsample, TwoByTwoToFourByFourHandComputed) {
  // x = [[0, 1], [2, 3]]; align_corners=false, ×2: torch gives rows
  // [0, .25, .75, 1], [.5, .75, 1.25, 1.5], [1.5, 1.75, 2.25, 2.5], [2, 2.25, 2.75, 3].
  const Tensor x = Tensor::from_vector<double>({0, 1, 2, 3}, {1, 1, 2, 2});
  EXPECT_EQ(upsample_bilinear(x, {.height = 4, .width = 4}).to_vector<double>(),
            (std::vector<double>{0, .25, .75, 1, .5, .75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3}));
  // align_corners=true, 2 -> 3: the corners are kept and the middle is the average.
  EXPECT_EQ(upsample_bilinear(x, {.height = 3, .width = 3, .align_corners = true}).to_vector<double>(),
            (std::vector<double>{0, .5, 1, 1, 1.5, 2, 2, 2.5, 3}));
}

TEST(Upsample, MatchesTorchRuleForNonIntegerScalesBothModes) {
  const Tensor x = random_input({1, 1, 5, 7}, 2).detach();
  const std::vector<double> xv = x.to_vector<double>();
  for (bool align : {false, true})
    for (auto [ho, wo] : {std::pair<int64_t, int64_t>{13, 9}, {3, 4}, {1, 1}, {5, 7}, {8, 17}}) {
      const std::vector<double> y =
          upsample_bilinear(x, {.height = ho, .width = wo, .align_corners = align}).to_vector<double>();
      for (int64_t i = 0; i < ho; ++i)
        for (int64_t j = 0; j < wo; ++j)
          ASSERT_NEAR(y[size_t(i * wo + j)], reference(xv, 5, 7, ho, wo, i, j, align), 1e-14)
              << ho << "x" << wo << " align " << align << " at " << i << "," << j;
    }
}

TEST(Upsample, ScaleFactorUsesItsReciprocalAsTorch) {
  // Width 3 -> ⌊3·2.5⌋ = 7 with source scale 1/2.5 = 0.4 (not 3/7); height 1 -> 2.
  const Tensor x = Tensor::from_vector<double>({0, 10, 20}, {1, 1, 1, 3});
  const std::vector<double> y = upsample_bilinear(x, {.scale_factor = 2.5}).to_vector<double>();
  ASSERT_EQ(y.size(), 14u);
  for (int64_t j = 0; j < 7; ++j) {
    const double src = std::max(0.0, (double(j) + 0.5) * 0.4 - 0.5);
    EXPECT_NEAR(y[size_t(j)], std::min(src, 2.0) * 10.0, 1e-12) << j;
    EXPECT_EQ(y[size_t(7 + j)], y[size_t(j)]);
  }
}

TEST(Upsample, BackwardMatchesFiniteDifferencesBothModes) {
  const Tensor x = random_input({2, 3, 4, 5}, 3);
  for (bool align : {false, true})
    for (auto [ho, wo] : {std::pair<int64_t, int64_t>{11, 7}, {3, 3}, {9, 13}}) {
      const UpsampleOptions o{.height = ho, .width = wo, .align_corners = align};
      // Linear op: central differences are exact up to rounding (~1e-10).
      const GradcheckResult r = gradcheck(
          [&](const std::vector<Tensor>& v) { return upsample_bilinear(v[0], o); }, {x},
          testing::fd_options(1e-6, 1e-6));
      EXPECT_TRUE(r.ok) << ho << "x" << wo << " align " << align << ": " << r.report;
    }
}

// Few large planes (2 x 3 maps of 24x18 to 96x72): enough work for the planes to go to the
// OpenMP threads. Values against the rule, and forward and backward with the same bits on
// one thread as on two.
TEST(Upsample, FewLargePlanesOnSeveralThreadsMatchTheRuleAndOneThread) {
  const Tensor x = random_input({2, 3, 24, 18}, 17);
  auto run = [&](int threads) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    Tensor xi = x.detach().clone();
    xi.set_requires_grad(true);
    const Tensor y = upsample_bilinear(xi, {.height = 96, .width = 72});
    sum(mul(y, y)).backward();
    omp_set_num_threads(before);
    return std::make_pair(y.detach().to_vector<double>(), xi.grad().to_vector<double>());
  };
  const auto [y2, g2] = run(2);
  const auto [y1, g1] = run(1);
  const std::vector<double> xv = x.to_vector<double>();
  double worst = 0;
  for (int64_t plane = 0; plane < 6; ++plane) {
    const std::vector<double> xp(xv.begin() + plane * 24 * 18, xv.begin() + (plane + 1) * 24 * 18);
    for (int64_t i = 0; i < 96; ++i)
      for (int64_t j = 0; j < 72; ++j)
        worst = std::max(worst, std::abs(y2[size_t((plane * 96 + i) * 72 + j)] - reference(xp, 24, 18, 96, 72, i, j, false)));
  }
  EXPECT_LT(worst, 1e-12);
  EXPECT_EQ(y2, y1);
  EXPECT_EQ(g2, g1);
}

TEST(Upsample, ModuleAndArgumentErrors) {
  Upsample up({.height = 6, .width = 10});
  EXPECT_EQ(up(Tensor::zeros({2, 3, 3, 5})).shape(), (Shape{2, 3, 6, 10}));
  EXPECT_THROW(upsample_bilinear(Tensor::zeros({3, 4, 4}), {.height = 2, .width = 2}), Error);
  EXPECT_THROW(upsample_bilinear(Tensor::zeros({1, 1, 4, 4}), {}), Error);
  EXPECT_THROW(upsample_bilinear(Tensor::zeros({1, 1, 4, 4}), {.height = 2, .width = 2, .scale_factor = 2}), Error);
  EXPECT_THROW(upsample_bilinear(Tensor::zeros({1, 1, 4, 4}, DType::i64), {.height = 2, .width = 2}), Error);
}

TEST(UpsampleCuda, MatchesCpuForwardAndBackward) {
  CBST_REQUIRE_CUDA();
  const Tensor x = random_input({2, 3, 9, 11}, 5, -2, 2, DType::f32);
  for (bool align : {false, true})
    for (auto [ho, wo] : {std::pair<int64_t, int64_t>{37, 29}, {5, 4}, {72, 88}}) {
      const UpsampleOptions o{.height = ho, .width = wo, .align_corners = align};
      // Gather vs scatter sum a handful of f32 products in different orders.
      testing::expect_cuda_matches_cpu("upsample " + std::to_string(ho) + "x" + std::to_string(wo),
                                       [&](const auto& v) { return upsample_bilinear(v[0], o); },
                                       {x}, {.atol = 1e-5, .rtol = 1e-5});
    }
}

}  // namespace
}  // namespace cbst
