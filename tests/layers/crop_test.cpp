// crop: values at offsets, zero-padded backward, errors, parity.
#include <gtest/gtest.h>

#include "engine/gradcheck.h"
#include "layers/crop.h"
#include "tests/layers/layer_test_util.h"

namespace cbst {
namespace {

TEST(Crop, TakesTheWindowAtTheOffsets) {
  const Tensor x = Tensor::arange(2 * 5 * 6, DType::f64).reshape({1, 2, 5, 6});
  const Tensor y = crop(x, {.height = 2, .width = 3, .offset_y = 1, .offset_x = 2});
  EXPECT_EQ(y.shape(), (Shape{1, 2, 2, 3}));
  EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{8, 9, 10, 14, 15, 16, 38, 39, 40, 44, 45, 46}));
  const Tensor ref = Tensor::zeros({1, 7, 4, 4});
  EXPECT_EQ(crop_like(x, ref, 1, 1).shape(), (Shape{1, 2, 4, 4}));
}

TEST(Crop, BackwardPadsWithZeros) {
  Tensor x = testing::random_input({2, 2, 5, 4}, 1);
  const CropOptions o{.height = 3, .width = 2, .offset_y = 2, .offset_x = 1};
  crop(x, o).backward(Tensor::ones({2, 2, 3, 2}, DType::f64));
  const std::vector<double> g = x.grad().to_vector<double>();
  for (int64_t k = 0; k < int64_t(g.size()); ++k) {
    const int64_t r = (k / 4) % 5, c = k % 4;
    const bool inside = r >= 2 && r < 5 && c >= 1 && c < 3;
    EXPECT_EQ(g[size_t(k)], inside ? 1.0 : 0.0) << k;
  }
  const GradcheckResult res = gradcheck([&](const std::vector<Tensor>& v) { return crop(v[0], o); },
                                        {x}, testing::fd_options(1e-6, 1e-6));
  EXPECT_TRUE(res.ok) << res.report;
}

TEST(Crop, WindowOutsideTheInputIsAnError) {
  const Tensor x = Tensor::zeros({1, 1, 4, 4});
  EXPECT_THROW(crop(x, {.height = 3, .width = 3, .offset_y = 2}), Error);
  EXPECT_THROW(crop(x, {.height = 2, .width = 2, .offset_x = -1}), Error);
  EXPECT_THROW(crop(Tensor::zeros({4, 4}), {.height = 2, .width = 2}), Error);
}

TEST(CropCuda, MatchesCpuForwardAndBackward) {
  CBST_REQUIRE_CUDA();
  const Tensor x = testing::random_input({2, 3, 40, 44}, 2, -1, 1, DType::f32);
  // Pure copies: exact.
  testing::expect_cuda_matches_cpu(
      "crop", [](const auto& v) { return crop(v[0], {.height = 34, .width = 34, .offset_y = 5, .offset_x = 5}); },
      {x}, {.atol = 0, .rtol = 0});
}

}  // namespace
}  // namespace cbst
