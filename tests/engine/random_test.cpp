#include <gtest/gtest.h>

#include <cmath>

#include "engine/ops.h"
#include "engine/random.h"

namespace cbst {
namespace {

TEST(Random, SameSeedReproducesAndDifferentSeedsDiffer) {
  Generator a(7), b(7), c(8);
  const auto x = rand_uniform({100}, 0, 1, DType::f32, Device::cpu(), &a).to_vector<float>();
  const auto y = rand_uniform({100}, 0, 1, DType::f32, Device::cpu(), &b).to_vector<float>();
  const auto z = rand_uniform({100}, 0, 1, DType::f32, Device::cpu(), &c).to_vector<float>();
  EXPECT_EQ(x, y);
  EXPECT_NE(x, z);
  // Consecutive draws from one generator differ (the counter advances).
  EXPECT_NE(x, rand_uniform({100}, 0, 1, DType::f32, Device::cpu(), &a).to_vector<float>());
}

TEST(Random, DistributionsHaveTheRightMoments) {
  Generator g(1);
  const int64_t n = 200000;
  const Tensor u = rand_uniform({n}, -1, 3, DType::f64, Device::cpu(), &g);
  EXPECT_NEAR(mean(u).item<double>(), 1.0, 0.02);  // sd of the mean: 1.15/sqrt(n) ≈ 0.0026
  EXPECT_GE(min(u).item<double>(), -1.0);
  EXPECT_LT(max(u).item<double>(), 3.0);
  const Tensor z = randn({n}, 2.0, 0.5, DType::f64, Device::cpu(), &g);
  EXPECT_NEAR(mean(z).item<double>(), 2.0, 0.01);
  EXPECT_NEAR(std::sqrt(mean(pow(z - 2.0, 2.0)).item<double>()), 0.5, 0.01);
  const Tensor bern = bernoulli({n}, 0.3, DType::f32, Device::cpu(), &g);
  EXPECT_NEAR(mean(bern).item<float>(), 0.3, 0.01);
}

TEST(Random, HostDrawsAreUniformAndInRange) {
  Generator g(3);
  int64_t counts[5] = {};
  for (int i = 0; i < 50000; ++i) ++counts[g.next_below(5)];
  for (int64_t c : counts) EXPECT_NEAR(double(c) / 50000.0, 0.2, 0.01);
}

}  // namespace
}  // namespace cbst
