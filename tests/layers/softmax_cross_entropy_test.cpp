// softmax_cross_entropy: brute force, ignore pixels, class weights, gradients, errors, parity.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/gradcheck.h"
#include "layers/softmax_cross_entropy.h"
#include "tests/layers/layer_test_util.h"

namespace cbst {
namespace {

using testing::random_input;

// Labels in [0, classes) with every `ignore_every`-th pixel set to 255.
Tensor make_labels(const Shape& shape, int64_t classes, int64_t ignore_every, DType dtype,
                   uint64_t seed) {
  Generator gen(seed);
  std::vector<int64_t> v(size_t(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = (ignore_every > 0 && i % size_t(ignore_every) == 1) ? 255
                                                              : int64_t(gen.next_below(uint64_t(classes)));
  return Tensor::from_vector<int64_t>(v, shape).to(dtype);
}

// The definition, one pixel at a time.
double brute_force(const Tensor& logits, const Tensor& labels, const std::vector<double>& w) {
  const int64_t n = logits.size(0), c = logits.size(1), h = logits.size(2), wd = logits.size(3);
  const std::vector<double> x = logits.to(DType::f64).to_vector<double>();
  const std::vector<int64_t> y = labels.to(DType::i64).to_vector<int64_t>();
  double num = 0, den = 0;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t p = 0; p < h * wd; ++p) {
      const int64_t label = y[size_t(b * h * wd + p)];
      if (label == 255) continue;
      double z = 0;
      for (int64_t k = 0; k < c; ++k) z += std::exp(x[size_t((b * c + k) * h * wd + p)]);
      const double weight = w.empty() ? 1.0 : w[size_t(label)];
      num += weight * (std::log(z) - x[size_t((b * c + label) * h * wd + p)]);
      den += weight;
    }
  return num / den;
}

TEST(SoftmaxCrossEntropy, MatchesBruteForceWithIgnorePixels) {
  const Tensor x = random_input({2, 5, 4, 3}, 1, -3, 3);
  for (DType dt : {DType::u8, DType::i32, DType::i64}) {
    const Tensor y = make_labels({2, 4, 3}, 5, 3, dt, 2);
    const double loss = softmax_cross_entropy(x, y).item<double>();
    EXPECT_NEAR(loss, brute_force(x, y, {}), 1e-13) << dtype_name(dt);
  }
}

// Large enough for the CPU kernel's blocks of pixels to run on the OpenMP threads (and with a
// last, partial block per image): the loss against the definition, and the gradient of each
// logit against the softmax it must equal (p_c − [c = y]) · w_y / Σw.
TEST(SoftmaxCrossEntropy, LargeMapsOnSeveralThreadsMatchTheDefinition) {
  const Shape shape{3, 7, 41, 67};  // 2,747 pixels per image: 85 full blocks and a part
  Tensor x = random_input(shape, 11, -4, 4);
  x.set_requires_grad(true);
  const Tensor y = make_labels({3, 41, 67}, 7, 5, DType::u8, 12);
  const std::vector<double> w{0.5, 2.0, 1.0, 3.0, 1.5, 0.25, 1.0};
  const Tensor loss = softmax_cross_entropy(x, y, {.class_weights = Tensor::from_vector<double>(w, {7})});
  EXPECT_NEAR(loss.item<double>(), brute_force(x.detach(), y, w), 1e-12);
  loss.backward();
  const std::vector<double> xv = x.detach().to_vector<double>(), g = x.grad().to_vector<double>();
  const std::vector<int64_t> yv = y.to(DType::i64).to_vector<int64_t>();
  const int64_t hw = 41 * 67;
  double den = 0;
  for (int64_t label : yv)
    if (label != 255) den += w[size_t(label)];
  double worst = 0;
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t p = 0; p < hw; ++p) {
      const int64_t label = yv[size_t(b * hw + p)];
      double z = 0;
      for (int64_t k = 0; k < 7; ++k) z += std::exp(xv[size_t((b * 7 + k) * hw + p)]);
      for (int64_t k = 0; k < 7; ++k) {
        const size_t i = size_t((b * 7 + k) * hw + p);
        const double want =
            label == 255 ? 0.0 : (std::exp(xv[i]) / z - (k == label ? 1.0 : 0.0)) * w[size_t(label)] / den;
        worst = std::max(worst, std::abs(g[i] - want));
      }
    }
  EXPECT_LT(worst, 1e-15);
}

// In f32 the CPU kernel runs its blocks of pixels through the vector exp: loss and gradient
// must keep the bits of the per-pixel recipe with std::exp (max, Σ exp(x − m) in class order,
// m + log Σ, the terms summed in pixel order in double), including the pixels whose logits
// send exp outside the vector path's range.
TEST(SoftmaxCrossEntropy, FloatMapsKeepTheBitsOfThePerPixelRecipe) {
  const int64_t n = 2, c = 19, hw = 37 * 53;
  std::vector<float> xv = random_input({n, c, 37, 53}, 21, -6, 6).to(DType::f32).to_vector<float>();
  for (size_t i = 0; i < xv.size(); i += 997) xv[i] = -150.0f;  // exp(x − m) below the vector range
  Tensor x = Tensor::from_vector<float>(xv, {n, c, 37, 53});
  x.set_requires_grad(true);
  const Tensor y = make_labels({n, 37, 53}, c, 9, DType::u8, 22);
  const Tensor loss = softmax_cross_entropy(x, y);
  loss.backward();
  const std::vector<int64_t> yv = y.to(DType::i64).to_vector<int64_t>();
  std::vector<float> lse(size_t(n * hw));
  double term = 0, weight = 0;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t p = 0; p < hw; ++p) {
      const float* xs = xv.data() + b * c * hw + p;
      float m, total;
      testing::softmax_max_and_sum(xs, c, hw, m, total);
      const float l = m + std::log(total);
      lse[size_t(b * hw + p)] = l;
      const int64_t label = yv[size_t(b * hw + p)];
      if (label == 255) continue;
      term += double(l - xs[label * hw]);
      weight += 1.0;
    }
  const float want_loss = float(term / weight);
  EXPECT_EQ(loss.item<float>(), want_loss);
  const float scale = 1.0f / float(weight);
  const std::vector<float> g = x.grad().to_vector<float>();
  int64_t differ = 0;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t p = 0; p < hw; ++p) {
        const int64_t label = yv[size_t(b * hw + p)];
        const size_t i = size_t((b * c + k) * hw + p);
        const float want = label == 255 ? 0.0f
                                        : scale * (std::exp(xv[i] - lse[size_t(b * hw + p)]) - (k == label ? 1.0f : 0.0f));
        differ += std::memcmp(&want, &g[i], sizeof want) != 0;
      }
  EXPECT_EQ(differ, 0);
}

TEST(SoftmaxCrossEntropy, ClassWeightsNormaliseBySumOfPixelWeights) {
  const Tensor x = random_input({2, 4, 3, 3}, 3);
  const Tensor y = make_labels({2, 3, 3}, 4, 4, DType::u8, 4);
  const std::vector<double> w{0.5, 2.0, 1.0, 3.0};
  const double loss =
      softmax_cross_entropy(x, y, {.class_weights = Tensor::from_vector<double>(w, {4})}).item<double>();
  EXPECT_NEAR(loss, brute_force(x, y, w), 1e-13);
}

TEST(SoftmaxCrossEntropy, HandComputedTwoClassValue) {
  // One pixel, logits (0, ln 3): p = (1/4, 3/4); label 1 -> −ln(3/4).
  const Tensor x = Tensor::from_vector<double>({0.0, std::log(3.0)}, {1, 2, 1, 1});
  const Tensor y = Tensor::from_vector<int64_t>({1}, {1, 1, 1});
  EXPECT_NEAR(softmax_cross_entropy(x, y).item<double>(), -std::log(0.75), 1e-15);
  // (N, C) logits with (N) labels.
  const Tensor x2 = Tensor::from_vector<double>({0.0, std::log(3.0), 0.0, 0.0}, {2, 2});
  const Tensor y2 = Tensor::from_vector<int64_t>({1, 0}, {2});
  EXPECT_NEAR(softmax_cross_entropy(x2, y2).item<double>(),
              0.5 * (-std::log(0.75) - std::log(0.5)), 1e-15);
}

TEST(SoftmaxCrossEntropy, IsStableForHugeLogits) {
  const Tensor x = Tensor::from_vector<float>({1000.f, 0.f, -1000.f, 1000.f}, {2, 2});
  const Tensor y = Tensor::from_vector<int64_t>({0, 0}, {2});
  const float loss = softmax_cross_entropy(x, y).item<float>();
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_NEAR(loss, 1000.0f, 1e-3f);  // pixel 1 costs 0, pixel 2 costs 2000
}

TEST(SoftmaxCrossEntropy, BackwardMatchesFiniteDifferences) {
  const Tensor x = random_input({2, 4, 3, 5}, 7);
  const Tensor y = make_labels({2, 3, 5}, 4, 5, DType::i64, 8);
  const Tensor w = Tensor::from_vector<double>({1.5, 0.25, 1.0, 2.0}, {4});
  // Smooth in f64: eps 1e-6 gives central differences accurate to ~1e-9.
  for (const Tensor& weights : {Tensor(), w}) {
    const GradcheckResult r = gradcheck(
        [&](const std::vector<Tensor>& v) {
          return softmax_cross_entropy(v[0], y, {.class_weights = weights});
        },
        {x}, testing::fd_options(1e-6, 1e-6));
    EXPECT_TRUE(r.ok) << r.report;
  }
}

TEST(SoftmaxCrossEntropy, IgnoredPixelsGetZeroGradient) {
  Tensor x = random_input({1, 3, 2, 2}, 9);
  const Tensor y = Tensor::from_vector<uint8_t>({0, 255, 2, 255}, {1, 2, 2});
  softmax_cross_entropy(x, y).backward();
  const std::vector<double> g = x.grad().to_vector<double>();
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_EQ(g[size_t(c * 4 + 1)], 0.0);
    EXPECT_EQ(g[size_t(c * 4 + 3)], 0.0);
    EXPECT_NE(g[size_t(c * 4 + 0)], 0.0);
  }
}

TEST(SoftmaxCrossEntropy, AllIgnoredBatchGivesZeroLossAndZeroGradients) {
  Tensor x = random_input({2, 3, 2, 2}, 10);
  const Tensor y = Tensor::full({2, 2, 2}, 255, DType::u8);
  const Tensor loss = softmax_cross_entropy(x, y);
  EXPECT_EQ(loss.item<double>(), 0.0);
  loss.backward();
  for (double g : x.grad().to_vector<double>()) EXPECT_EQ(g, 0.0);
}

TEST(SoftmaxCrossEntropy, CustomIgnoreIndex) {
  const Tensor x = random_input({1, 3, 1, 4}, 12);
  const Tensor y = Tensor::from_vector<int64_t>({-100, 1, 2, -100}, {1, 1, 4});
  const Tensor y_as_255 = Tensor::from_vector<int64_t>({255, 1, 2, 255}, {1, 1, 4});
  EXPECT_NEAR(softmax_cross_entropy(x, y, {.ignore_index = -100}).item<double>(),
              brute_force(x, y_as_255, {}), 1e-14);
}

TEST(SoftmaxCrossEntropy, OutOfRangeLabelNamesTheValue) {
  const Tensor x = random_input({1, 4, 2, 2}, 13);
  const Tensor y = Tensor::from_vector<uint8_t>({0, 1, 7, 255}, {1, 2, 2});
  try {
    softmax_cross_entropy(x, y);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label value 7"), std::string::npos) << e.what();
  }
  const Tensor neg = Tensor::from_vector<int64_t>({0, -1, 0, 0}, {1, 2, 2});
  EXPECT_THROW(softmax_cross_entropy(x, neg), Error);
}

TEST(SoftmaxCrossEntropy, ShapeAndTypeErrors) {
  const Tensor x = Tensor::zeros({2, 3, 4, 4});
  EXPECT_THROW(softmax_cross_entropy(x, Tensor::zeros({2, 4, 5}, DType::u8)), Error);
  EXPECT_THROW(softmax_cross_entropy(x, Tensor::zeros({2, 4, 4}, DType::f32)), Error);
  EXPECT_THROW(softmax_cross_entropy(Tensor::zeros({2, 3, 4}), Tensor::zeros({2, 4}, DType::u8)), Error);
  EXPECT_THROW(softmax_cross_entropy(x, Tensor::zeros({2, 4, 4}, DType::u8),
                                     {.class_weights = Tensor::ones({4})}),
               Error);
}

TEST(SoftmaxCrossEntropyCuda, MatchesCpuForwardAndBackward) {
  CBST_REQUIRE_CUDA();
  const Tensor x = random_input({2, 19, 13, 17}, 21, -4, 4, DType::f32);
  const Tensor y = make_labels({2, 13, 17}, 19, 7, DType::u8, 22).to(Device::cuda());
  const Tensor w = rand_uniform({19}, 0.5, 2.0).to(Device::cuda());
  const auto y_cpu = y.to(Device::cpu());
  const auto w_cpu = w.to(Device::cpu());
  // f32 log-sum-exp in a different summation order on each device: ~1e-6 relative.
  const testing::Tolerance tol{.atol = 1e-6, .rtol = 1e-5};
  testing::expect_cuda_matches_cpu(
      "ce", [&](const auto& v) {
        return softmax_cross_entropy(v[0], v[0].device().is_cuda() ? y : y_cpu);
      }, {x}, tol);
  testing::expect_cuda_matches_cpu(
      "ce_weighted", [&](const auto& v) {
        const bool cu = v[0].device().is_cuda();
        return softmax_cross_entropy(v[0], cu ? y : y_cpu, {.class_weights = cu ? w : w_cpu});
      }, {x}, tol);
}

TEST(SoftmaxCrossEntropyCuda, AllIgnoredAndBadLabelBehaveAsOnCpu) {
  CBST_REQUIRE_CUDA();
  Tensor x = random_input({1, 3, 4, 4}, 23, -1, 1, DType::f32).detach().to(Device::cuda());
  x.set_requires_grad(true);
  const Tensor loss = softmax_cross_entropy(x, Tensor::full({1, 4, 4}, 255, DType::u8, Device::cuda()));
  EXPECT_EQ(loss.to(Device::cpu()).item<float>(), 0.0f);
  loss.backward();
  for (float g : x.grad().to(Device::cpu()).to_vector<float>()) EXPECT_EQ(g, 0.0f);
  std::vector<int64_t> labels(16, 0);
  labels[9] = 3;
  try {
    softmax_cross_entropy(x, Tensor::from_vector<int64_t>(labels, {1, 4, 4}).to(Device::cuda()));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label value 3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cbst
