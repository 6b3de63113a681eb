// Class-balanced cross-entropy weights: pixel counts against a brute-force count of the
// label files, and the ENet formula with its normalisation.
#include <gtest/gtest.h>

#include <cmath>

#include "data/image.h"
#include "engine/check.h"
#include "selftrain/class_weights.h"
#include "tests/data/data_test_util.h"

namespace cbst {
namespace {

namespace tu = data::test_util;

TEST(ClassWeights, CountsFollowEachDatasetsLabelEncoding) {
  tu::TempDir d;
  // GTA5 labels are Cityscapes labelIds: 7 = road (trainId 0), 26 = car (13), 0 = unlabeled.
  const std::vector<uint8_t> a = {7, 7, 7, 26, 0, 0}, b = {26, 26, 7, 7, 7, 7};
  tu::write_palette_png(d.file("gta/labels/00001.png"), 3, 2, a);
  tu::write_palette_png(d.file("gta/labels/00002.png"), 3, 2, b);
  data::write_png(d.file("gta/images/00001.png"), tu::pattern_image(3, 2, 0));
  data::write_png(d.file("gta/images/00002.png"), tu::pattern_image(3, 2, 1));
  const data::Dataset ds = data::open_gta5(d.path() + "/gta");
  const std::vector<int64_t> counts = class_pixel_counts({ds, ds}, data::ClassSpace::cityscapes19);
  ASSERT_EQ(counts.size(), 19u);
  EXPECT_EQ(counts[0], 2 * 7);   // road: 3 + 4 pixels, twice
  EXPECT_EQ(counts[13], 2 * 3);  // car: 1 + 2
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  EXPECT_EQ(total, 2 * 10);      // the two unlabeled pixels are ignored
}

TEST(ClassWeights, BalancedWeightsAreEnetsNormalisedToTheMeanPixel) {
  const std::vector<int64_t> counts = {600, 300, 100, 0};
  const Tensor w = balanced_class_weights(counts);
  ASSERT_EQ(w.numel(), 4);
  const std::vector<float> v = w.to_vector<float>();
  const double f[] = {0.6, 0.3, 0.1, 0.0};
  double mean = 0;
  for (int c = 0; c < 4; ++c) mean += f[c] / std::log(1.02 + f[c]);
  for (int c = 0; c < 4; ++c) EXPECT_NEAR(v[size_t(c)], 1.0 / std::log(1.02 + f[c]) / mean, 1e-6) << c;
  // Rarer classes weigh more; the pixel-weighted mean is 1.
  EXPECT_GT(v[2], v[1]);
  EXPECT_GT(v[1], v[0]);
  EXPECT_NEAR(0.6 * v[0] + 0.3 * v[1] + 0.1 * v[2], 1.0, 1e-6);
  EXPECT_THROW(balanced_class_weights({0, 0, 0}), Error);
  EXPECT_FALSE(class_weights_for("none", {}, data::ClassSpace::cityscapes19, Device::cpu()).defined());
  EXPECT_THROW(class_weights_for("inverse", {}, data::ClassSpace::cityscapes19, Device::cpu()), Error);
}

}  // namespace
}  // namespace cbst
