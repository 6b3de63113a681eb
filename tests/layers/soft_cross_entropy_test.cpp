// soft_cross_entropy: brute force, ignored pixels, one-hot equivalence, gradients, parity.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/gradcheck.h"
#include "layers/soft_cross_entropy.h"
#include "layers/softmax_cross_entropy.h"
#include "tests/layers/layer_test_util.h"

namespace cbst {
namespace {

using testing::random_input;

// Random probability vectors per pixel; every `empty_every`-th pixel all zeros (ignored).
Tensor make_targets(const Shape& shape, int64_t empty_every, uint64_t seed, DType dtype = DType::f64) {
  Generator gen(seed);
  const int64_t n = shape[0], c = shape[1], inner = shape_numel(shape) / (n * c);
  std::vector<double> v(size_t(shape_numel(shape)), 0.0);
  for (int64_t p = 0; p < n * inner; ++p) {
    if (empty_every > 0 && p % empty_every == 1) continue;
    const int64_t base = (p / inner) * c * inner + p % inner;
    double s = 0;
    for (int64_t k = 0; k < c; ++k) s += (v[size_t(base + k * inner)] = gen.next_double());
    for (int64_t k = 0; k < c; ++k) v[size_t(base + k * inner)] /= s;
  }
  return Tensor::from_vector<double>(v, shape).to(dtype);
}

// The definition, one pixel at a time: −Σ_c t log softmax(x) over pixels with Σ t ≠ 0.
double brute_force(const Tensor& logits, const Tensor& targets) {
  const int64_t n = logits.size(0), c = logits.size(1), inner = logits.numel() / (n * c);
  const std::vector<double> x = logits.to(DType::f64).to_vector<double>();
  const std::vector<double> t = targets.to(DType::f64).to_vector<double>();
  double num = 0, den = 0;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t p = 0; p < inner; ++p) {
      double z = 0, s = 0;
      for (int64_t k = 0; k < c; ++k) {
        z += std::exp(x[size_t((b * c + k) * inner + p)]);
        s += t[size_t((b * c + k) * inner + p)];
      }
      if (s == 0) continue;
      for (int64_t k = 0; k < c; ++k)
        num -= t[size_t((b * c + k) * inner + p)] * (x[size_t((b * c + k) * inner + p)] - std::log(z));
      den += 1;
    }
  return num / den;
}

TEST(SoftCrossEntropy, MatchesBruteForceWithEmptyTargets) {
  const Tensor x = random_input({2, 5, 4, 3}, 1, -3, 3);
  const Tensor t = make_targets({2, 5, 4, 3}, 3, 2);
  EXPECT_NEAR(soft_cross_entropy(x, t).item<double>(), brute_force(x, t), 1e-13);
  const Tensor x2 = random_input({6, 4}, 3);
  const Tensor t2 = make_targets({6, 4}, 4, 4);
  EXPECT_NEAR(soft_cross_entropy(x2, t2).item<double>(), brute_force(x2, t2), 1e-13);
}

TEST(SoftCrossEntropy, OneHotTargetsEqualHardCrossEntropy) {
  const Tensor x = random_input({2, 4, 3, 3}, 5);
  const std::vector<int64_t> y{0, 1, 255, 3, 2, 2, 1, 255, 0, 3, 3, 1, 0, 255, 2, 1, 0, 0};
  std::vector<double> onehot(size_t(2 * 4 * 9), 0.0);
  for (int64_t p = 0; p < 18; ++p)
    if (y[size_t(p)] != 255) onehot[size_t((p / 9) * 36 + y[size_t(p)] * 9 + p % 9)] = 1.0;
  const Tensor labels = Tensor::from_vector<int64_t>(y, {2, 3, 3});
  Tensor xs = x.detach(), xh = x.detach();
  xs.set_requires_grad(true);
  xh.set_requires_grad(true);
  const Tensor soft = soft_cross_entropy(xs, Tensor::from_vector<double>(onehot, {2, 4, 3, 3}));
  const Tensor hard = softmax_cross_entropy(xh, labels);
  EXPECT_NEAR(soft.item<double>(), hard.item<double>(), 1e-14);
  soft.backward();
  hard.backward();
  const auto gs = xs.grad().to_vector<double>(), gh = xh.grad().to_vector<double>();
  for (size_t k = 0; k < gs.size(); ++k) EXPECT_NEAR(gs[k], gh[k], 1e-15) << k;
}

TEST(SoftCrossEntropy, BackwardMatchesFiniteDifferences) {
  const Tensor x = random_input({2, 4, 3, 5}, 7);
  // Unnormalised targets too (mass 0.3 or 2.5 per pixel): the gradient's S_p factor.
  const Tensor t = make_targets({2, 4, 3, 5}, 5, 8);
  const Tensor scaled = mul(t, rand_uniform({2, 1, 3, 5}, 0.3, 2.5, DType::f64));
  for (const Tensor& target : {t, scaled}) {
    // Smooth in f64: eps 1e-6 gives central differences accurate to ~1e-9.
    const GradcheckResult r = gradcheck(
        [&](const std::vector<Tensor>& v) { return soft_cross_entropy(v[0], target); }, {x},
        testing::fd_options(1e-6, 1e-6));
    EXPECT_TRUE(r.ok) << r.report;
  }
}

TEST(SoftCrossEntropy, AllEmptyTargetsGiveZeroLossAndZeroGradients) {
  Tensor x = random_input({2, 3, 2, 2}, 10);
  const Tensor loss = soft_cross_entropy(x, Tensor::zeros({2, 3, 2, 2}, DType::f64));
  EXPECT_EQ(loss.item<double>(), 0.0);
  loss.backward();
  for (double g : x.grad().to_vector<double>()) EXPECT_EQ(g, 0.0);
}

TEST(SoftCrossEntropy, ShapeAndTypeErrors) {
  const Tensor x = Tensor::zeros({2, 3, 4, 4});
  EXPECT_THROW(soft_cross_entropy(x, Tensor::zeros({2, 3, 4, 5})), Error);
  EXPECT_THROW(soft_cross_entropy(x, Tensor::zeros({2, 3, 4, 4}, DType::f64)), Error);
  EXPECT_THROW(soft_cross_entropy(Tensor::zeros({2, 3, 4}), Tensor::zeros({2, 3, 4})), Error);
}

TEST(SoftCrossEntropyCuda, MatchesCpuForwardAndBackward) {
  CBST_REQUIRE_CUDA();
  const Tensor x = random_input({2, 19, 13, 17}, 21, -4, 4, DType::f32);
  const Tensor t_cpu = make_targets({2, 19, 13, 17}, 7, 22, DType::f32);
  const Tensor t = t_cpu.to(Device::cuda());
  // f32 log-sum-exp in a different summation order on each device: ~1e-6 relative.
  const testing::Tolerance tol{.atol = 1e-6, .rtol = 1e-5};
  testing::expect_cuda_matches_cpu(
      "soft_ce", [&](const auto& v) {
        return soft_cross_entropy(v[0], v[0].device().is_cuda() ? t : t_cpu);
      }, {x}, tol);
}

}  // namespace
}  // namespace cbst
