// Transforms: resize conventions, crop padding, flip, normalisation, and the fused
// augmentation against the composed reference.
#include <gtest/gtest.h>

#include <cmath>

#include "data/transforms.h"
#include "engine/check.h"
#include "tests/data/data_test_util.h"

using namespace cbst::data;
namespace tu = cbst::data::test_util;

TEST(Resize, SameSizeIsTheIdentity) {
  const Image im = tu::pattern_image(13, 7);
  EXPECT_EQ(resize_bilinear(im, 13, 7).pixels, im.pixels);
  const Labels l{3, 2, {1, 2, 3, 4, 5, 6}};
  EXPECT_EQ(resize_nearest(l, 3, 2).ids, l.ids);
}

TEST(Resize, BilinearUsesHalfPixelCentres) {
  // 2 pixels (0, 100) upsampled to 4: centres at -0.25, 0.25, 0.75, 1.25 -> 0, 25, 75, 100.
  Image im = Image::blank(2, 1, 1);
  im.pixels = {0, 100};
  EXPECT_EQ(resize_bilinear(im, 4, 1).pixels, (std::vector<uint8_t>{0, 25, 75, 100}));
}

TEST(Resize, NearestNeverInventsLabels) {
  const Labels l{4, 1, {7, 8, 255, 9}};
  EXPECT_EQ(resize_nearest(l, 8, 1).ids, (std::vector<uint8_t>{7, 7, 8, 8, 255, 255, 9, 9}));
  EXPECT_EQ(resize_nearest(l, 2, 1).ids, (std::vector<uint8_t>{8, 9}));
}

TEST(Crop, PadsLabelsWithIgnoreAndImagesWithThePadColour) {
  const Labels l{2, 2, {1, 2, 3, 4}};
  EXPECT_EQ(crop(l, 1, 0, 2, 3).ids, (std::vector<uint8_t>{2, 255, 4, 255, 255, 255}));
  const Image im = Image::blank(1, 1, 3, 9);
  EXPECT_EQ(crop(im, 0, 0, 2, 1, {1, 2, 3}).pixels, (std::vector<uint8_t>{9, 9, 9, 1, 2, 3}));
}

TEST(Flip, MirrorsRows) {
  Labels l{3, 1, {1, 2, 3}};
  flip_horizontal(l);
  EXPECT_EQ(l.ids, (std::vector<uint8_t>{3, 2, 1}));
}

TEST(Normalize, FollowsTheWeightConvention) {
  Image im = Image::blank(1, 1, 3);
  im.pixels = {255, 128, 0};
  float out[3];
  normalize(out, im, Normalization::caffe());  // BGR 0..255 minus mean
  EXPECT_FLOAT_EQ(out[0], 0 - 104.008f);
  EXPECT_FLOAT_EQ(out[2], 255 - 122.675f);
  normalize(out, im, Normalization::torchvision());  // RGB 0..1, mean/std
  EXPECT_NEAR(out[0], (1.0f - 0.485f) / 0.229f, 1e-5);
  EXPECT_NEAR(out[2], (0.0f - 0.406f) / 0.225f, 1e-5);
  EXPECT_THROW(Normalization::from_name("yuv"), cbst::Error);
}

TEST(Augment, DrawsStayInRangeAndDependOnlyOnTheStream) {
  const AugmentParams p{.min_scale = 0.7, .max_scale = 1.3, .crop_width = 50, .crop_height = 40};
  int flips = 0;
  for (uint64_t i = 0; i < 200; ++i) {
    SampleRng a(1, 2, i), b(1, 2, i);
    const AugmentDraw d = draw_augment(p, 100, 60, a), e = draw_augment(p, 100, 60, b);
    EXPECT_EQ(d.x0, e.x0);
    EXPECT_EQ(d.scaled_width, e.scaled_width);
    EXPECT_GE(d.scaled_width, 70);
    EXPECT_LE(d.scaled_width, 130);
    EXPECT_LE(d.x0 + 50, std::max(d.scaled_width, 50));
    EXPECT_LE(d.y0 + 40, std::max(d.scaled_height, 40));
    flips += d.flip;
  }
  EXPECT_GT(flips, 60);  // about half of 200; 60 is > 5 sigma below
  EXPECT_LT(flips, 140);
}

TEST(Augment, FusedPathMatchesResizeCropFlipNormalize) {
  const Image im = tu::pattern_image(37, 23, 5);
  Labels l = Labels::blank(37, 23);
  for (size_t i = 0; i < l.ids.size(); ++i) l.ids[i] = uint8_t(i % 19);
  const Normalization norm = Normalization::torchvision();
  for (const AugmentDraw& d : {AugmentDraw{.scaled_width = 45, .scaled_height = 28, .x0 = 3, .y0 = 5,
                                           .out_width = 30, .out_height = 20, .flip = true},
                               AugmentDraw{.scaled_width = 26, .scaled_height = 16, .x0 = 0, .y0 = 0,
                                           .out_width = 30, .out_height = 20, .flip = false}}) {
    std::vector<float> fused(3 * 30 * 20);
    std::vector<uint8_t> fused_labels(30 * 20);
    augment_sample(fused.data(), fused_labels.data(), im, &l, d, norm);
    Image ref = crop(resize_bilinear(im, d.scaled_width, d.scaled_height), d.x0, d.y0, 30, 20);
    Labels ref_l = crop(resize_nearest(l, d.scaled_width, d.scaled_height), d.x0, d.y0, 30, 20);
    if (d.flip) {
      flip_horizontal(ref);
      flip_horizontal(ref_l);
    }
    std::vector<float> ref_f(3 * 30 * 20);
    normalize(ref_f.data(), ref, norm);
    EXPECT_EQ(fused_labels, ref_l.ids);
    for (int y = 0; y < 20; ++y)
      for (int x = 0; x < 30; ++x) {
        const bool padded = (d.flip ? 29 - x : x) + d.x0 >= d.scaled_width || y + d.y0 >= d.scaled_height;
        for (int c = 0; c < 3; ++c) {
          const float v = fused[(c * 20 + y) * 30 + x];
          if (padded) {
            EXPECT_EQ(v, 0.0f);  // the mean colour
          } else {
            // The reference rounds to 8 bits after resizing: at most half a level apart.
            EXPECT_NEAR(v, ref_f[(c * 20 + y) * 30 + x], 0.5f / 255.0f / norm.std[c] + 1e-5f);
          }
        }
      }
  }
}
