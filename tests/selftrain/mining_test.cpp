#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "data/sample_rng.h"
#include "selftrain/adapt.h"
#include "selftrain/mining.h"
#include "tests/data/data_test_util.h"

namespace cbst {
namespace {

TEST(RareClasses, AreThoseUnderTheFractionElseTheThreeRarestPredicted) {
  // 10000 pixels: class 2 has 5 (0.05% < 0.1%), class 3 has 9; class 4 none at all.
  const std::vector<int64_t> predicted{6000, 3986, 5, 9, 0};
  EXPECT_EQ(rare_classes(predicted, {}), (std::vector<int>{2, 3, 4}));
  // Nothing under the fraction: the three rarest classes that were predicted.
  EXPECT_EQ(rare_classes({500, 100, 300, 200}, {.rare_fraction = 0.0}), (std::vector<int>{1, 3, 2}));
  EXPECT_TRUE(rare_classes({0, 0}, {}).empty());
}

data::Labels labels_with(int width, int height, uint8_t background, std::vector<std::pair<int, uint8_t>> pixels) {
  data::Labels l{.width = width, .height = height, .ids = std::vector<uint8_t>(size_t(width * height), background)};
  for (auto [i, c] : pixels) l.ids[size_t(i)] = c;
  return l;
}

TEST(Mining, CentresTargetCropsOnPixelsOfPresentRareClasses) {
  const data::Labels l = labels_with(20, 10, 0, {{13, 5}, {77, 5}, {150, 7}});
  auto hook = mining_crop_center({5, 6, 7}, /*first_target_index=*/4, {.probability = 1.0});
  std::set<std::pair<int, int>> seen;
  for (uint64_t k = 0; k < 200; ++k) {
    data::SampleRng rng(1, 0, k);
    int cx = -1, cy = -1;
    ASSERT_TRUE(hook(4 + int64_t(k % 3), l, rng, cx, cy));
    const uint8_t c = l.ids[size_t(cy * 20 + cx)];
    EXPECT_TRUE(c == 5 || c == 7) << "centre (" << cx << ", " << cy << ") is class " << int(c);
    seen.insert({cx, cy});
  }
  EXPECT_EQ(seen.size(), 3u) << "every rare pixel is reachable";
}

TEST(Mining, LeavesSourceSamplesAndUnluckyDrawsToTheUniformCrop) {
  const data::Labels l = labels_with(8, 8, 0, {{9, 3}});
  int cx = 0, cy = 0;
  data::SampleRng rng(1, 0, 0);
  EXPECT_FALSE(mining_crop_center({3}, 10, {.probability = 1.0})(9, l, rng, cx, cy)) << "index 9 is a source image";
  EXPECT_FALSE(mining_crop_center({3}, 0, {.probability = 0.0})(0, l, rng, cx, cy));
  EXPECT_FALSE(mining_crop_center({4}, 0, {.probability = 1.0})(0, l, rng, cx, cy)) << "class 4 is absent";
  // With probability 0.8 about 80% of draws mine.
  int mined = 0;
  auto hook = mining_crop_center({3}, 0, {.probability = 0.8});
  for (uint64_t k = 0; k < 2000; ++k) {
    data::SampleRng r(7, 1, k);
    mined += hook(0, l, r, cx, cy);
  }
  EXPECT_NEAR(mined / 2000.0, 0.8, 0.03);
}

TEST(RareClassSampling, WeightsAreExpOfOneMinusTheFrequencyOverT) {
  const std::vector<int64_t> pixels{600, 300, 100, 0};  // f = 0.6, 0.3, 0.1, 0
  const std::vector<double> w = rare_class_weights(pixels, 0.5);
  ASSERT_EQ(w.size(), 4u);
  for (size_t c = 0; c < 4; ++c)
    EXPECT_NEAR(w[c] / w[0], std::exp((1 - double(pixels[c]) / 1000) / 0.5) / std::exp((1 - 0.6) / 0.5), 1e-12);
  // DAFormer's T = 0.01 with a frequent class present does not overflow.
  for (double v : rare_class_weights({900000, 10, 1}, 0.01)) EXPECT_TRUE(std::isfinite(v));
}

// Image-first: a crop of a labelled sample is centred on one of the classes it holds, drawn
// with the weights above among them; samples from end_index on are left alone.
TEST(RareClassSampling, ImageFirstDrawsAmongTheClassesTheImageHolds) {
  const data::Labels l = labels_with(20, 10, 0, {{13, 5}, {77, 5}, {150, 7}, {151, 7}, {152, 7}});
  const std::vector<int64_t> pixels{100000, 0, 0, 0, 0, 50, 0, 900};
  auto hook = rare_class_crop_center(pixels, /*end_index=*/4, {.probability = 1.0});
  const std::vector<double> w = rare_class_weights(pixels, 0.01);
  const double want = w[5] / (w[0] + w[5] + w[7]);  // about 0.7: T = 0.01 spreads the rare classes
  int on5 = 0, on7 = 0;
  const int draws = 4000;
  for (uint64_t k = 0; k < uint64_t(draws); ++k) {
    data::SampleRng rng(2, 0, k);
    int cx = -1, cy = -1;
    ASSERT_TRUE(hook(int64_t(k % 4), l, rng, cx, cy));
    on5 += l.ids[size_t(cy * 20 + cx)] == 5;
    on7 += l.ids[size_t(cy * 20 + cx)] == 7;
  }
  EXPECT_NEAR(double(on5) / draws, want, 0.03);
  EXPECT_EQ(on5 + on7, draws) << "class 0, the most frequent, is all but never drawn";
  data::SampleRng rng(2, 0, 0);
  int cx = 0, cy = 0;
  EXPECT_FALSE(hook(4, l, rng, cx, cy)) << "index 4 is past end_index";
}

// Class-first: each class's images and weights from one pass over the labels.
TEST(RareClassSampling, ClassFirstListsEachClasssImagesAndWeighsItsPixels) {
  data::test_util::TempDir d;
  // Road (labelId 7) everywhere; image 1 adds car (26) on 6 pixels, image 2 bicycle (33) on
  // 2 and image 3 both (car 4, bicycle 2).
  const int w = 8, h = 4;
  const std::vector<std::vector<std::pair<int, uint8_t>>> extra = {
      {}, {{0, 26}, {1, 26}, {2, 26}, {3, 26}, {4, 26}, {5, 26}}, {{9, 33}, {10, 33}},
      {{20, 26}, {21, 26}, {22, 26}, {23, 26}, {30, 33}, {31, 33}}};
  for (size_t i = 0; i < extra.size(); ++i) {
    std::vector<uint8_t> ids(size_t(w * h), 7);
    for (auto [p, id] : extra[i]) ids[size_t(p)] = id;
    const std::string stem = "0000" + std::to_string(i + 1);
    data::write_png(d.file("gta/images/" + stem + ".png"), data::test_util::pattern_image(w, h, int(i)));
    data::test_util::write_palette_png(d.file("gta/labels/" + stem + ".png"), w, h, ids);
  }
  const data::Dataset ds = data::open_gta5(d.path() + "/gta");
  const data::ClassFirstSampling cf =
      rare_class_first(ds, data::ClassSpace::cityscapes19, {.probability = 0.4, .temperature = 0.01});
  EXPECT_EQ(cf.probability, 0.4);
  EXPECT_EQ(cf.end_index, 4);
  ASSERT_EQ(cf.images_with_class.size(), 19u);
  EXPECT_EQ(cf.images_with_class[0], (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(cf.images_with_class[13], (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(cf.images_with_class[18], (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(cf.images_with_class[12].empty());
  std::vector<int64_t> pixels(19, 0);
  pixels[0] = 4 * 32 - 10 - 4;
  pixels[13] = 10;
  pixels[18] = 4;
  EXPECT_EQ(cf.class_weight, rare_class_weights(pixels, 0.01));
}

TEST(PortionSchedule, GrowsByStepUpToTheMaximum) {
  const PortionSchedule s = PortionSchedule::parse("0.2,0.05,0.3");
  EXPECT_DOUBLE_EQ(s.at(0), 0.2);
  EXPECT_DOUBLE_EQ(s.at(1), 0.25);
  EXPECT_DOUBLE_EQ(s.at(2), 0.3);
  EXPECT_DOUBLE_EQ(s.at(5), 0.3);
  EXPECT_THROW(PortionSchedule::parse("0.2,0.05"), Error);
  EXPECT_THROW(PortionSchedule::parse("1.5,0,1"), Error);
  EXPECT_THROW(PortionSchedule::parse("0.2,0.05,0.5,9"), Error);
}

TEST(SourceSubsets, AreNestedPrefixesOfOneSeededPermutation) {
  const std::vector<size_t> a = source_subset_order(100, 3), b = source_subset_order(100, 3);
  EXPECT_EQ(a, b) << "a function of the seed only";
  EXPECT_NE(a, source_subset_order(100, 4));
  std::vector<size_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  std::vector<size_t> iota(100);
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(sorted, iota) << "a permutation";
  // Subsets for portions 0.3 < 0.5 are prefixes, so the smaller lies inside the larger.
  const std::set<size_t> small(a.begin(), a.begin() + 30), large(a.begin(), a.begin() + 50);
  EXPECT_TRUE(std::includes(large.begin(), large.end(), small.begin(), small.end()));
}

TEST(AdaptMethod, NamesRoundTripAndUnknownNamesAreErrors) {
  for (const char* n : {"source-only", "st", "cbst", "st-sp", "cbst-sp"})
    EXPECT_STREQ(adapt_method_name(adapt_method_from_name(n)), n);
  EXPECT_THROW(adapt_method_from_name("crst"), Error);
}

}  // namespace
}  // namespace cbst
