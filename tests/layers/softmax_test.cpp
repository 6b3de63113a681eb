// softmax / log_softmax: values, gradients, CPU/CUDA parity, argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/gradcheck.h"
#include "layers/softmax.h"
#include "tests/layers/layer_test_util.h"

namespace cbst {
namespace {

using testing::random_input;

TEST(Softmax, MatchesHandComputedValuesAlongDimOne) {
  // (1, 3, 1, 2): the two pixels have logits (1, 2, 3) and (0, 0, 1000) (overflow-safe).
  const Tensor x = Tensor::from_vector<double>({1, 0, 2, 0, 3, 1000}, {1, 3, 1, 2});
  const std::vector<double> y = softmax(x).to_vector<double>();
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(y[0], std::exp(1.0) / z, 1e-15);
  EXPECT_NEAR(y[2], std::exp(2.0) / z, 1e-15);
  EXPECT_NEAR(y[4], std::exp(3.0) / z, 1e-15);
  EXPECT_NEAR(y[1], 0.0, 1e-300);
  EXPECT_NEAR(y[5], 1.0, 1e-15);
  const std::vector<double> ly = log_softmax(x).to_vector<double>();
  EXPECT_NEAR(ly[0], 1.0 - std::log(z), 1e-14);
  EXPECT_NEAR(ly[1], -1000.0, 1e-12);
  EXPECT_NEAR(ly[5], 0.0, 1e-15);
}

TEST(Softmax, TwoDimensionalInputSumsToOnePerRow) {
  const Tensor x = random_input({4, 7}, 5, -5, 5);
  const std::vector<double> rows = sum(softmax(x), {1}).to_vector<double>();
  for (double r : rows) EXPECT_NEAR(r, 1.0, 1e-14);
}

// In f32 the CPU forward runs blocks of pixels through the vector exp: softmax and
// log_softmax must keep the bits of the per-pixel recipe with std::exp, also for logits that
// send exp outside the vector path's range, and with a last, partial block per image.
TEST(Softmax, FloatMapsKeepTheBitsOfThePerPixelRecipe) {
  const int64_t n = 3, c = 11, hw = 29 * 31;
  std::vector<float> xv = random_input({n, c, 29, 31}, 31, -8, 8).to(DType::f32).to_vector<float>();
  for (size_t i = 0; i < xv.size(); i += 613) xv[i] = -200.0f;
  const Tensor x = Tensor::from_vector<float>(xv, {n, c, 29, 31});
  const std::vector<float> got = softmax(x).to_vector<float>(), got_log = log_softmax(x).to_vector<float>();
  int64_t differ = 0;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t p = 0; p < hw; ++p) {
      const float* xs = xv.data() + b * c * hw + p;
      float m, total;
      testing::softmax_max_and_sum(xs, c, hw, m, total);
      const float log_total = std::log(total);
      for (int64_t k = 0; k < c; ++k) {
        const size_t i = size_t((b * c + k) * hw + p);
        const float z = xs[k * hw] - m, want = std::exp(z) / total, want_log = z - log_total;
        differ += std::memcmp(&want, &got[i], sizeof want) != 0;
        differ += std::memcmp(&want_log, &got_log[i], sizeof want_log) != 0;
      }
    }
  EXPECT_EQ(differ, 0);
}

TEST(Softmax, BackwardMatchesFiniteDifferences) {
  for (const Shape& shape : {Shape{2, 4, 3, 5}, Shape{5, 3}}) {
    const Tensor x = random_input(shape, 11);
    // Smooth functions in f64: central differences with eps 1e-6 are accurate to ~1e-9.
    const GradcheckResult r = gradcheck([](const std::vector<Tensor>& v) { return softmax(v[0]); },
                                        {x}, testing::fd_options(1e-6, 1e-6));
    EXPECT_TRUE(r.ok) << r.report;
    const GradcheckResult lr = gradcheck(
        [](const std::vector<Tensor>& v) { return log_softmax(v[0]); }, {x}, testing::fd_options(1e-6, 1e-6));
    EXPECT_TRUE(lr.ok) << lr.report;
  }
}

TEST(Softmax, RejectsOneDimensionalAndIntegerInputs) {
  EXPECT_THROW(softmax(Tensor::zeros({5})), Error);
  EXPECT_THROW(log_softmax(Tensor::zeros({2, 3}, DType::i64)), Error);
}

TEST(SoftmaxCuda, MatchesCpuForwardAndBackward) {
  CBST_REQUIRE_CUDA();
  const Tensor x = random_input({2, 19, 9, 11}, 3, -4, 4, DType::f32);
  // cuDNN sums exp() in a different order than the CPU loop: f32 rounding, ~1e-7 relative.
  testing::expect_cuda_matches_cpu("softmax", [](const auto& v) { return softmax(v[0]); }, {x},
                                   {.atol = 1e-6, .rtol = 1e-5});
  testing::expect_cuda_matches_cpu("log_softmax", [](const auto& v) { return log_softmax(v[0]); },
                                   {x}, {.atol = 1e-5, .rtol = 1e-5});
  const Tensor x2 = random_input({6, 5}, 4, -4, 4, DType::f32);
  testing::expect_cuda_matches_cpu("softmax_2d", [](const auto& v) { return softmax(v[0]); }, {x2},
                                   {.atol = 1e-6, .rtol = 1e-5});
}

}  // namespace
}  // namespace cbst
