// Transforms: resize conventions, crop padding, flip, normalisation, and the fused
// augmentation against the composed reference.
#include <gtest/gtest.h>

#include <algorithm>
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

TEST(ColorJitter, ParsesBothFormsAndRefusesOutOfRangeValues) {
  const ColorJitter a = ColorJitter::parse("0.4,0.3,0.2,0.1");
  EXPECT_DOUBLE_EQ(a.brightness, 0.4);
  EXPECT_DOUBLE_EQ(a.hue, 0.1);
  const ColorJitter b = ColorJitter::parse("0.25");
  EXPECT_DOUBLE_EQ(b.contrast, 0.25);
  EXPECT_DOUBLE_EQ(b.hue, 0.0);
  EXPECT_FALSE(ColorJitter::parse("0").enabled());
  EXPECT_EQ(ColorJitter::parse(a.str()).str(), a.str());
  EXPECT_DOUBLE_EQ(a.probability, 1.0);
  EXPECT_EQ(a.str(), "0.4,0.3,0.2,0.1");  // P = 1 is not written: the old form, unchanged
  const ColorJitter c = ColorJitter::parse("0.4,0.4,0.4,0.1,0.5");
  EXPECT_DOUBLE_EQ(c.hue, 0.1);
  EXPECT_DOUBLE_EQ(c.probability, 0.5);
  EXPECT_EQ(ColorJitter::parse(c.str()).str(), "0.4,0.4,0.4,0.1,0.5");
  EXPECT_FALSE(ColorJitter::parse("0.4,0.4,0.4,0.1,0").enabled());
  for (const char* bad : {"1.5", "0.1,0.1,0.1,0.6", "-0.1", "0.1,0.1", "x", "0.1,0.1,0.1,0.1x", "0.1,0.1,0.1,0.1,",
                          "0.1,0.1,0.1,0.1,1.5", "0.1,0.1,0.1,0.1,-0.5", "0.1,0.1,0.1,0.1,0.5,0.5", "nan", "0.1,,0.1,0.1"})
    EXPECT_THROW(ColorJitter::parse(bad), cbst::Error) << bad;
}

// With P < 1 an image is jittered with probability P, and a jittered image is exactly what
// the plain jitter makes from the same stream (the gate is drawn after the four factors).
TEST(ColorJitter, ProbabilityAppliesTheSameJitterToAboutThatShareOfImages) {
  const Image base = tu::pattern_image(13, 7, 5);
  const ColorJitter always{.brightness = 0.4, .contrast = 0.4, .saturation = 0.4, .hue = 0.1};
  ColorJitter sometimes = always;
  sometimes.probability = 0.3;
  int jittered = 0;
  const int n = 400;
  for (int i = 0; i < n; ++i) {
    Image x = base, y = base;
    SampleRng a(8, 1, uint64_t(i)), b(8, 1, uint64_t(i));
    color_jitter(x, always, a);
    color_jitter(y, sometimes, b);
    ASSERT_NE(x.pixels, base.pixels) << "the plain jitter left image " << i << " unchanged";
    if (y.pixels == base.pixels) continue;
    EXPECT_EQ(y.pixels, x.pixels) << "image " << i << " was jittered differently";
    ++jittered;
  }
  // Binomial(400, 0.3): mean 120, standard deviation 9.2; the streams are fixed, so this is
  // one fixed count, and a gate drawn the wrong way round (0.7) would give about 280.
  EXPECT_GT(jittered, 90);
  EXPECT_LT(jittered, 150);
  // P = 1 draws exactly four values, as before.
  SampleRng a(4, 0, 7), b(4, 0, 7);
  Image x = base;
  color_jitter(x, always, a);
  for (int k = 0; k < 4; ++k) b.uniform();
  EXPECT_EQ(a.uniform(), b.uniform());
}

// Each factor against torchvision's definition, computed by hand on one pixel or image.
TEST(ColorJitter, FactorsFollowTorchvisionDefinitions) {
  auto one_pixel = [](uint8_t r, uint8_t g, uint8_t b) {
    Image im = Image::blank(1, 1, 3);
    im.pixels = {r, g, b};
    return im;
  };
  // The factors come from the stream: brightness b ∈ [1 − B, 1 + B], drawn first.
  SampleRng probe(3, 0, 0);
  const double factor = probe.uniform(0.5, 1.5);
  Image im = one_pixel(100, 50, 200);
  SampleRng rng(3, 0, 0);
  color_jitter(im, {.brightness = 0.5}, rng);
  EXPECT_EQ(im.pixels[0], uint8_t(std::lround(std::min(255.0, 100 * factor))));
  EXPECT_EQ(im.pixels[2], uint8_t(std::lround(std::min(255.0, 200 * factor))));
  // Saturation 0 everywhere would give grey: with S = 1 the factor can reach 0; check the
  // blend toward the pixel's own grey (0.299 R + 0.587 G + 0.114 B) for the drawn factor.
  SampleRng probe2(9, 1, 2);
  for (int k = 0; k < 2; ++k) probe2.uniform();
  const double s = probe2.uniform(0.0, 2.0);
  im = one_pixel(200, 100, 0);
  SampleRng rng2(9, 1, 2);
  color_jitter(im, {.saturation = 1.0}, rng2);
  const double grey = 0.299 * 200 + 0.587 * 100;
  EXPECT_NEAR(im.pixels[0], std::clamp(s * 200 + (1 - s) * grey, 0.0, 255.0), 0.51);
  EXPECT_NEAR(im.pixels[2], std::clamp(s * 0 + (1 - s) * grey, 0.0, 255.0), 0.51);
  // A hue rotation by a third of a turn maps pure red to pure green; grey has no hue.
  Image red = one_pixel(255, 0, 0), grey_px = one_pixel(90, 90, 90);
  for (uint64_t i = 0; i < 2000; ++i) {  // find a stream whose hue draw is 1/3 turn ± 0.01
    SampleRng p(5, 0, i);
    for (int k = 0; k < 3; ++k) p.uniform();
    if (std::fabs(p.uniform(-0.5, 0.5) - 1.0 / 3) > 0.01) continue;
    SampleRng r1(5, 0, i), r2(5, 0, i);
    color_jitter(red, {.hue = 0.5}, r1);
    color_jitter(grey_px, {.hue = 0.5}, r2);
    // 0.01 turn off a third leaves at most 6 · 0.01 · 255 ≈ 15 of red or blue.
    EXPECT_LE(red.pixels[0], 16);
    EXPECT_EQ(red.pixels[1], 255);
    EXPECT_LE(red.pixels[2], 16);
    EXPECT_EQ(grey_px.pixels, (std::vector<uint8_t>{90, 90, 90}));
    return;
  }
  FAIL() << "no stream drew a hue near 1/3 turn";
}

TEST(ColorJitter, ContrastKeepsTheMeanGreyAndDrawsFourValuesAlways) {
  const Image base = tu::pattern_image(17, 9, 2);
  Image im = base;
  SampleRng rng(4, 0, 7);
  color_jitter(im, {.contrast = 0.5}, rng);
  double before = 0, after = 0;
  for (size_t i = 0; i < base.pixels.size(); i += 3) {
    before += 0.299 * base.pixels[i] + 0.587 * base.pixels[i + 1] + 0.114 * base.pixels[i + 2];
    after += 0.299 * im.pixels[i] + 0.587 * im.pixels[i + 1] + 0.114 * im.pixels[i + 2];
  }
  // Blending with the mean grey keeps the mean, up to rounding and clamping of each value.
  EXPECT_NEAR(after / (17 * 9), before / (17 * 9), 2.0);
  EXPECT_NE(im.pixels, base.pixels);
  // Four draws whatever is enabled, so the options never shift another sample's stream.
  SampleRng a(4, 0, 7), b(4, 0, 7);
  Image x = base, y = base;
  color_jitter(x, {.contrast = 0.5}, a);
  color_jitter(y, {.brightness = 0.1, .contrast = 0.5, .saturation = 0.1, .hue = 0.1}, b);
  EXPECT_EQ(a.uniform(), b.uniform());
}

TEST(GaussianBlur, ParsesBothFormsAndRefusesOutOfRangeValues) {
  const GaussianBlur a = GaussianBlur::parse("0.5");
  EXPECT_DOUBLE_EQ(a.probability, 0.5);
  EXPECT_DOUBLE_EQ(a.sigma_lo, 0.15);  // DAFormer's range
  EXPECT_DOUBLE_EQ(a.sigma_hi, 1.15);
  const GaussianBlur b = GaussianBlur::parse("1,0.5,2");
  EXPECT_DOUBLE_EQ(b.sigma_lo, 0.5);
  EXPECT_DOUBLE_EQ(b.sigma_hi, 2.0);
  EXPECT_FALSE(GaussianBlur::parse("0").enabled());
  EXPECT_EQ(GaussianBlur::parse(b.str()).str(), b.str());
  for (const char* bad : {"1.5", "-0.1", "0.5,0,1", "0.5,2,1", "0.5,1,40", "0.5,1", "x"})
    EXPECT_THROW(GaussianBlur::parse(bad), cbst::Error) << bad;
}

// The blurred image against a brute-force 2-D Gaussian sum with reflected borders, for the
// σ the stream draws; a constant image stays constant; probability 0 changes nothing but
// still takes its two draws.
TEST(GaussianBlur, MatchesABruteForceGaussianWithReflectedBorders) {
  const Image base = tu::pattern_image(13, 9, 5);
  SampleRng probe(8, 0, 3);
  EXPECT_LT(probe.uniform(), 1.0);
  const double sigma = probe.uniform(0.6, 1.4);
  Image im = base;
  SampleRng rng(8, 0, 3);
  gaussian_blur(im, {.probability = 1.0, .sigma_lo = 0.6, .sigma_hi = 1.4}, rng);
  const int w = 13, h = 9, r = int(std::ceil(3 * sigma));
  auto reflect = [](int i, int n) { return i < 0 ? -i : i >= n ? 2 * n - 2 - i : i; };
  double norm = 0;
  for (int i = -r; i <= r; ++i) norm += std::exp(-0.5 * i * i / (sigma * sigma));
  int changed = 0;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        double acc = 0;
        for (int dy = -r; dy <= r; ++dy)
          for (int dx = -r; dx <= r; ++dx)
            acc += std::exp(-0.5 * (dx * dx + dy * dy) / (sigma * sigma)) *
                   base.pixels[(size_t(reflect(y + dy, h)) * w + reflect(x + dx, w)) * 3 + c];
        acc /= norm * norm;
        const uint8_t got = im.pixels[(size_t(y) * w + x) * 3 + c];
        EXPECT_NEAR(got, acc, 0.51) << x << "," << y << "," << c;
        changed += got != base.pixels[(size_t(y) * w + x) * 3 + c];
      }
  EXPECT_GT(changed, 100);

  Image flat = Image::blank(7, 5, 3);
  for (uint8_t& v : flat.pixels) v = 77;
  SampleRng r2(1, 2, 3);
  gaussian_blur(flat, {.probability = 1.0, .sigma_lo = 2, .sigma_hi = 3}, r2);
  for (uint8_t v : flat.pixels) EXPECT_EQ(v, 77);

  Image off = base;
  SampleRng a(8, 0, 3), b(8, 0, 3);
  gaussian_blur(off, {.probability = 0.0}, a);
  EXPECT_EQ(off.pixels, base.pixels);
  b.uniform();
  b.uniform();
  EXPECT_EQ(a.uniform(), b.uniform());
}

// Issue 11: --crop 1000x1000 on 48x96 images trained on 99% padding at 100 s a step.
TEST(Augment, ACropMoreThanTwiceTheLargestScaledImageIsRefused) {
  SampleRng rng(1, 0, 0);
  const AugmentParams huge{.min_scale = 0.5, .max_scale = 2.0, .crop_width = 1000, .crop_height = 1000};
  try {
    draw_augment(huge, 96, 48, rng);
    FAIL() << "accepted";
  } catch (const cbst::Error& e) {
    EXPECT_NE(std::string(e.what()).find("the crop 1000x1000 is more than twice the size of a 48x96 image"),
              std::string::npos) << e.what();
  }
  // Up to twice on one side is padding users ask for (a crop taller than a wide image).
  const AugmentParams tall{.min_scale = 1.0, .max_scale = 1.0, .crop_width = 96, .crop_height = 96};
  EXPECT_NO_THROW(draw_augment(tall, 96, 48, rng));
}
