// max_pool2d: torch's output-size rule, values against brute force, gradients, ties,
// errors, CPU/CUDA parity.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "engine/gradcheck.h"
#include "layers/max_pool2d.h"
#include "tests/layers/layer_test_util.h"

namespace cbst {
namespace {

using testing::random_input;

// torch.nn.functional.max_pool2d's size rule, written independently (pooling_output_shape).
int64_t torch_size(int64_t in, int64_t k, int64_t s, int64_t p, bool ceil) {
  const int64_t num = in + 2 * p - k + (ceil ? s - 1 : 0);
  int64_t out = num / s + 1;  // num ≥ 0 in every case below
  if (ceil && (out - 1) * s >= in + p) --out;
  return out;
}

// Distinct values (no ties): a random permutation of 0..n-1, scaled.
Tensor distinct_input(const Shape& shape, uint64_t seed) {
  const int64_t n = shape_numel(shape);
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = double(i) * 0.1 - double(n) * 0.05;
  Generator gen(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(v[size_t(i)], v[gen.next_below(uint64_t(i + 1))]);
  Tensor t = Tensor::from_vector<double>(v, shape);
  t.set_requires_grad(true);
  return t;
}

Tensor brute_force(const Tensor& x, const MaxPool2dOptions& o) {
  const int64_t s = o.stride ? o.stride : o.kernel;
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t ho = torch_size(h, o.kernel, s, o.pad, o.ceil_mode);
  const int64_t wo = torch_size(w, o.kernel, s, o.pad, o.ceil_mode);
  const std::vector<double> v = x.to_vector<double>();
  std::vector<double> out;
  for (int64_t plane = 0; plane < n * c; ++plane)
    for (int64_t i = 0; i < ho; ++i)
      for (int64_t j = 0; j < wo; ++j) {
        double m = -INFINITY;
        for (int64_t p = 0; p < o.kernel; ++p)
          for (int64_t q = 0; q < o.kernel; ++q) {
            const int64_t r = i * s - o.pad + p, col = j * s - o.pad + q;
            if (r >= 0 && r < h && col >= 0 && col < w) m = std::max(m, v[size_t((plane * h + r) * w + col)]);
          }
        out.push_back(m);
      }
  return Tensor::from_vector<double>(out, {n, c, ho, wo});
}

TEST(MaxPool2d, OutputSizeFollowsTorchFormula) {
  struct Case { int64_t in, k, s, p; bool ceil; };
  const std::vector<Case> cases{{500 + 198, 2, 2, 0, true}, {7, 2, 2, 0, true}, {7, 2, 2, 0, false},
                                {6, 3, 2, 1, true},         {5, 3, 2, 1, true}, {5, 3, 2, 1, false},
                                {10, 3, 3, 1, true},        {4, 2, 3, 1, true}, {9, 4, 3, 2, true},
                                {1, 1, 1, 0, true},         {2, 3, 2, 1, true}, {11, 5, 4, 2, true}};
  for (const Case& c : cases) {
    const MaxPool2dOptions o{.kernel = c.k, .stride = c.s, .pad = c.p, .ceil_mode = c.ceil};
    EXPECT_EQ(max_pool2d_output_size(c.in, o), torch_size(c.in, c.k, c.s, c.p, c.ceil))
        << "in " << c.in << " k " << c.k << " s " << c.s << " p " << c.p << " ceil " << c.ceil;
  }
  // FCN-VGG16 at 500×500: conv1 698 -> pool1 349 -> 175 -> 88 -> 44 -> 22 (models_weights.md).
  int64_t size = 698;
  for (int64_t expected : {349, 175, 88, 44, 22}) {
    size = max_pool2d_output_size(size, {.kernel = 2, .stride = 2, .ceil_mode = true});
    EXPECT_EQ(size, expected);
  }
  // Ceil mode drops the window that would start in the right padding: in 4, k 2, s 3, p 1.
  EXPECT_EQ(max_pool2d_output_size(4, {.kernel = 2, .stride = 3, .pad = 1, .ceil_mode = true}), 2);
}

TEST(MaxPool2d, MatchesBruteForce) {
  const std::vector<MaxPool2dOptions> cases{
      {.kernel = 2, .stride = 2},
      {.kernel = 2, .stride = 2, .ceil_mode = true},
      {.kernel = 3, .stride = 2, .pad = 1, .ceil_mode = true},
      {.kernel = 3, .stride = 1, .pad = 1},
      {.kernel = 4, .stride = 3, .pad = 2, .ceil_mode = true}};
  const Tensor x = distinct_input({2, 3, 7, 9}, 5);
  for (const MaxPool2dOptions& o : cases) {
    const Tensor y = max_pool2d(x, o);
    const Tensor ref = brute_force(x.detach(), o);
    ASSERT_EQ(y.shape(), ref.shape()) << "kernel " << o.kernel << " pad " << o.pad;
    EXPECT_EQ(y.to_vector<double>(), ref.to_vector<double>());
  }
}

// Few large planes (2 images x 3 channels of 90x70): enough work for the planes to go to
// the OpenMP threads. The values against brute force, and forward and backward with the
// same bits on one thread as on two.
TEST(MaxPool2d, FewLargePlanesOnSeveralThreadsMatchBruteForceAndOneThread) {
  const Tensor x = distinct_input({2, 3, 90, 70}, 9);
  const MaxPool2dOptions o{.kernel = 3, .stride = 2, .pad = 1};
  auto run = [&](int threads) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    Tensor xi = x.detach().clone();
    xi.set_requires_grad(true);
    const Tensor y = max_pool2d(xi, o);
    sum(mul(y, y)).backward();
    omp_set_num_threads(before);
    return std::make_pair(y.detach().to_vector<double>(), xi.grad().to_vector<double>());
  };
  const auto [y2, g2] = run(2);
  const auto [y1, g1] = run(1);
  EXPECT_EQ(y2, brute_force(x.detach(), o).to_vector<double>());
  EXPECT_EQ(y2, y1);
  EXPECT_EQ(g2, g1);
}

TEST(MaxPool2d, BackwardMatchesFiniteDifferencesIncludingCeilModeWithPadding) {
  const std::vector<MaxPool2dOptions> cases{
      {.kernel = 2, .stride = 2, .ceil_mode = true},
      {.kernel = 3, .stride = 2, .pad = 1, .ceil_mode = true},
      {.kernel = 3, .stride = 1, .pad = 1},  // overlapping windows: gradients accumulate
      {.kernel = 4, .stride = 3, .pad = 2, .ceil_mode = true}};
  // Odd sizes; distinct values 0.1 apart so eps = 1e-6 never changes the argmax.
  const Tensor x = distinct_input({2, 2, 7, 5}, 9);
  for (const MaxPool2dOptions& o : cases) {
    const GradcheckResult r = gradcheck([&](const std::vector<Tensor>& v) { return max_pool2d(v[0], o); },
                                        {x}, testing::fd_options(1e-6, 1e-6));
    EXPECT_TRUE(r.ok) << "kernel " << o.kernel << " pad " << o.pad << ": " << r.report;
  }
}

TEST(MaxPool2d, TiesRouteTheGradientToTheFirstMaximum) {
  Tensor x = Tensor::ones({1, 1, 2, 2}, DType::f64);
  x.set_requires_grad(true);
  const auto [y, indices] = max_pool2d_with_indices(x, {.kernel = 2});
  EXPECT_EQ(indices.to_vector<int64_t>(), std::vector<int64_t>{0});
  y.backward(Tensor::ones({1, 1, 1, 1}, DType::f64));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1, 0, 0, 0}));
}

// Windows inside the image take a branch-free shortcut (2×2/2 its own); ties and NaNs must
// still go to the first maximum in row-major window order (a NaN wins and ends the search),
// as on the border.
TEST(MaxPool2d, InteriorWindowsKeepTheFirstMaximumAndNaNRuleOnTiesAndNaNs) {
  const int64_t h = 9, w = 11;  // odd: ceil mode adds partial windows on the general path
  std::vector<float> v(size_t(2 * 3 * h * w));
  Generator gen(17);
  for (float& e : v) {
    const uint64_t r = gen.next_below(10);
    e = r == 0 ? NAN : float(gen.next_below(3));  // few distinct values: ties everywhere
  }
  const Tensor x = Tensor::from_vector<float>(v, {2, 3, h, w});
  const std::vector<MaxPool2dOptions> cases{{.kernel = 2, .stride = 2},
                                            {.kernel = 2, .stride = 2, .ceil_mode = true},
                                            {.kernel = 3, .stride = 2, .pad = 1},
                                            {.kernel = 3, .stride = 2, .pad = 1, .ceil_mode = true},
                                            {.kernel = 3, .stride = 1, .pad = 1},
                                            {.kernel = 4, .stride = 3, .pad = 2, .ceil_mode = true}};
  for (const MaxPool2dOptions& o : cases) {
    const bool ceil = o.ceil_mode;
    const auto [y, indices] = max_pool2d_with_indices(x, o);
    const std::vector<float> got = y.to_vector<float>();
    const std::vector<int64_t> at = indices.to_vector<int64_t>();
    const int64_t ho = y.size(2), wo = y.size(3);
    for (int64_t plane = 0; plane < 6; ++plane)
      for (int64_t i = 0; i < ho; ++i)
        for (int64_t j = 0; j < wo; ++j) {
          int64_t best = -1;
          const int64_t h0 = i * o.stride - o.pad, w0 = j * o.stride - o.pad;
          for (int64_t r = std::max<int64_t>(h0, 0); r < std::min(h0 + o.kernel, h) && !(best >= 0 && std::isnan(v[size_t(plane * h * w + best)])); ++r)
            for (int64_t c = std::max<int64_t>(w0, 0); c < std::min(w0 + o.kernel, w); ++c) {
              const float e = v[size_t(plane * h * w + r * w + c)];
              if (best >= 0 && std::isnan(v[size_t(plane * h * w + best)])) break;
              if (best < 0 || std::isnan(e) || e > v[size_t(plane * h * w + best)]) best = r * w + c;
            }
          const size_t k = size_t((plane * ho + i) * wo + j);
          const float want = v[size_t(plane * h * w + best)];
          EXPECT_EQ(at[k], best) << "kernel " << o.kernel << " stride " << o.stride << " plane " << plane << " ("
                                 << i << ", " << j << ") ceil " << ceil;
          EXPECT_TRUE(std::isnan(want) ? std::isnan(got[k]) : got[k] == want) << "(" << i << ", " << j << ")";
        }
  }
}

TEST(MaxPool2d, IndicesAreFlatWithinThePlane) {
  const Tensor x = Tensor::from_vector<float>({1, 5, 2, 3, 9, 4, 0, 7, 8, 6, 1, 2}, {1, 1, 3, 4});
  const auto [y, indices] = max_pool2d_with_indices(x, {.kernel = 2, .stride = 2, .ceil_mode = true});
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{9, 7, 8, 2}));
  EXPECT_EQ(indices.to_vector<int64_t>(), (std::vector<int64_t>{4, 7, 8, 11}));
}

TEST(MaxPool2d, ModuleForwardsItsOptions) {
  MaxPool2d pool({.kernel = 2, .stride = 2, .ceil_mode = true});
  EXPECT_EQ(pool(Tensor::zeros({1, 3, 5, 7})).shape(), (Shape{1, 3, 3, 4}));
  EXPECT_TRUE(pool.named_parameters().empty());
}

TEST(MaxPool2d, ArgumentErrors) {
  EXPECT_THROW(max_pool2d(Tensor::zeros({3, 5, 5})), Error);                        // not 4-D
  EXPECT_THROW(max_pool2d(Tensor::zeros({1, 1, 5, 5}), {.kernel = 2, .pad = 2}), Error);  // pad > k/2
  EXPECT_THROW(max_pool2d(Tensor::zeros({1, 1, 2, 2}), {.kernel = 3}), Error);      // too small
  EXPECT_THROW(max_pool2d(Tensor::zeros({1, 1, 4, 4}, DType::u8)), Error);
}

TEST(MaxPool2dCuda, MatchesCpuForwardAndBackward) {
  CBST_REQUIRE_CUDA();
  const std::vector<MaxPool2dOptions> cases{
      {.kernel = 2, .stride = 2, .ceil_mode = true},
      {.kernel = 3, .stride = 2, .pad = 1, .ceil_mode = true},
      {.kernel = 3, .stride = 1, .pad = 1}};
  const Tensor x = distinct_input({2, 3, 17, 13}, 31).detach().to(DType::f32).set_requires_grad(true);
  for (const MaxPool2dOptions& o : cases)
    // Selection and sums of at most 9 terms: exact up to f32 summation order.
    testing::expect_cuda_matches_cpu("max_pool2d k" + std::to_string(o.kernel),
                                     [&](const auto& v) { return max_pool2d(v[0], o); }, {x},
                                     {.atol = 1e-6, .rtol = 1e-6});
}

}  // namespace
}  // namespace cbst
