// The threaded loader: batch layout, determinism across worker counts, errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "data/loader.h"
#include "engine/check.h"
#include "tests/data/data_test_util.h"

using namespace cbst::data;
namespace tu = cbst::data::test_util;
using tu::TempDir;

namespace {

struct Epoch {
  std::vector<std::vector<float>> images;
  std::vector<std::vector<uint8_t>> labels;
  std::vector<int64_t> indices;
};

Epoch run_epoch(const Dataset& ds, int workers, int64_t epoch, uint64_t seed = 11) {
  Loader loader(ds, {.batch_size = 2, .workers = workers, .prefetch_batches = 2, .drop_last = false, .seed = seed,
                     .augment_params = {.crop_width = 32, .crop_height = 20}});
  loader.start_epoch(epoch);
  Epoch out;
  while (auto b = loader.next()) {
    out.images.push_back(b->images.to_vector<float>());
    out.labels.push_back(b->labels.to_vector<uint8_t>());
    out.indices.insert(out.indices.end(), b->indices.begin(), b->indices.end());
  }
  return out;
}

}  // namespace

TEST(Loader, BatchesAreEngineTensorsOfTheRequestedShape) {
  TempDir d;
  const Dataset ds = open_gta5(tu::write_gta_tree(d, 5));
  Loader loader(ds, {.batch_size = 2, .workers = 2, .seed = 1, .augment_params = {.crop_width = 32, .crop_height = 20}});
  EXPECT_EQ(loader.batches_per_epoch(), 2);  // drop_last
  loader.start_epoch(0);
  auto b = loader.next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->images.shape(), (cbst::Shape{2, 3, 20, 32}));
  EXPECT_EQ(b->images.dtype(), cbst::DType::f32);
  EXPECT_EQ(b->labels.shape(), (cbst::Shape{2, 20, 32}));
  EXPECT_EQ(b->labels.dtype(), cbst::DType::u8);
  for (uint8_t v : b->labels.to_vector<uint8_t>()) EXPECT_TRUE(v < 19 || v == 255);
  EXPECT_TRUE(loader.next().has_value());
  EXPECT_FALSE(loader.next().has_value());
}

TEST(Loader, OneTwoAndThreeWorkersGiveBitIdenticalBatches) {
  TempDir d;
  const Dataset ds = open_gta5(tu::write_gta_tree(d, 7));
  for (int64_t epoch : {0, 1}) {
    const Epoch ref = run_epoch(ds, 1, epoch);
    for (int workers : {0, 2, 3}) {
      const Epoch e = run_epoch(ds, workers, epoch);
      ASSERT_EQ(e.indices, ref.indices) << workers << " workers";
      ASSERT_EQ(e.labels, ref.labels) << workers << " workers";
      ASSERT_EQ(e.images.size(), ref.images.size());
      for (size_t k = 0; k < e.images.size(); ++k)
        ASSERT_EQ(0, std::memcmp(e.images[k].data(), ref.images[k].data(), e.images[k].size() * sizeof(float)))
            << "batch " << k << " with " << workers << " workers";
    }
  }
}

TEST(Loader, EpochOrderIsAPermutationThatChangesWithEpochAndSeed) {
  TempDir d;
  const Dataset ds = open_gta5(tu::write_gta_tree(d, 7));
  const Epoch e0 = run_epoch(ds, 2, 0), e1 = run_epoch(ds, 2, 1), other_seed = run_epoch(ds, 2, 0, 12);
  std::vector<int64_t> sorted = e0.indices;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_NE(e0.indices, e1.indices);
  EXPECT_NE(e0.images, other_seed.images);
}

TEST(Loader, RestartingAnEpochMidwayStartsItOver) {
  TempDir d;
  const Dataset ds = open_gta5(tu::write_gta_tree(d, 6));
  Loader loader(ds, {.batch_size = 1, .workers = 2, .seed = 3, .augment_params = {.crop_width = 16, .crop_height = 16}});
  loader.start_epoch(4);
  const auto first = loader.next()->images.to_vector<float>();
  loader.next();
  loader.start_epoch(4);
  EXPECT_EQ(loader.next()->images.to_vector<float>(), first);
}

TEST(BadInput, CorruptFileInALoaderSurfacesOnTheConsumerNamingTheFile) {
  TempDir d;
  const std::string root = tu::write_gta_tree(d, 4);
  tu::write_text(root + "/images/00003.png", "\x89PNG\r\n\x1a\n truncated");
  Loader loader(open_gta5(root), {.batch_size = 1, .workers = 2, .shuffle = false,
                                  .augment_params = {.crop_width = 16, .crop_height = 16}});
  loader.start_epoch(0);
  loader.next();
  loader.next();
  try {
    loader.next();
    FAIL() << "expected an error for images/00003.png";
  } catch (const cbst::Error& e) {
    EXPECT_NE(std::string(e.what()).find("images/00003.png"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(loader.next().has_value());  // the loader keeps going after a bad sample
}

TEST(BadInput, UnequalSizesWithoutCropNameBothFiles) {
  TempDir d;
  Loader loader(open_gta5(tu::write_gta_tree(d, 2)), {.batch_size = 2, .workers = 1, .shuffle = false, .augment = false});
  loader.start_epoch(0);
  try {
    loader.next();
    FAIL() << "expected a size error";
  } catch (const cbst::Error& e) {
    EXPECT_NE(std::string(e.what()).find("00001.png"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("00002.png"), std::string::npos) << e.what();
  }
}

// Random scale without a crop gives samples of unequal size: they are padded at the bottom and
// right to the batch's largest (mmseg's stack_batch), each sample's own pixels exactly what it
// gives alone in a batch of one, the padding 0 (the mean colour) and label 255.
TEST(Loader, UnequalAugmentedSamplesArePaddedToTheBatchsLargest) {
  TempDir d;
  const Dataset ds = open_gta5(tu::write_gta_tree(d, 4));
  const AugmentParams scale_only = {.min_scale = 0.5, .max_scale = 2.0, .crop_width = 0, .crop_height = 0};
  Loader batched(ds, {.batch_size = 4, .workers = 1, .shuffle = false, .seed = 5, .augment_params = scale_only});
  Loader single(ds, {.batch_size = 1, .workers = 1, .shuffle = false, .seed = 5, .augment_params = scale_only});
  batched.start_epoch(0);
  single.start_epoch(0);
  auto b = batched.next();
  ASSERT_TRUE(b.has_value());
  const int64_t h = b->images.size(2), w = b->images.size(3);
  const std::vector<float> images = b->images.to_vector<float>();
  const std::vector<uint8_t> labels = b->labels.to_vector<uint8_t>();
  int64_t padded_samples = 0;
  for (int64_t k = 0; k < 4; ++k) {
    auto one = single.next();
    ASSERT_TRUE(one.has_value());
    ASSERT_EQ(one->indices, std::vector<int64_t>{b->indices[size_t(k)]});
    const int64_t oh = one->images.size(2), ow = one->images.size(3);
    ASSERT_LE(oh, h);
    ASSERT_LE(ow, w);
    padded_samples += oh < h || ow < w;
    const std::vector<float> im = one->images.to_vector<float>();
    const std::vector<uint8_t> lab = one->labels.to_vector<uint8_t>();
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const bool inside = y < oh && x < ow;
        const uint8_t got = labels[size_t((k * h + y) * w + x)];
        ASSERT_EQ(got, inside ? lab[size_t(y * ow + x)] : uint8_t(255)) << "sample " << k << " at " << y << "," << x;
        for (int64_t c = 0; c < 3; ++c)
          ASSERT_EQ(images[size_t(((k * 3 + c) * h + y) * w + x)], inside ? im[size_t((c * oh + y) * ow + x)] : 0.0f)
              << "sample " << k << " channel " << c << " at " << y << "," << x;
      }
  }
  EXPECT_GE(padded_samples, 1) << "the scales drawn should differ, or this test checks nothing";
  EXPECT_EQ(b->draws.size(), 4u);
}

// Colour jitter and blur change only the images of the parts they are asked for, and no other draw:
// labels (crop, scale, flip) stay bit-identical.
TEST(Loader, PhotometricAugmentationTouchesOnlyTheChosenPartsAndNoOtherDraw) {
  TempDir d;
  const Dataset ds = open_gta5(tu::write_gta_tree(d, 4));
  auto epoch = [&](ColorJitter jitter, std::vector<bool> parts, GaussianBlur blur = {}) {
    LoaderOptions o{.batch_size = 1, .workers = 1, .shuffle = false, .drop_last = false, .seed = 3,
                    .augment_params = {.crop_width = 32, .crop_height = 20}};
    o.color_jitter = jitter;
    o.blur = blur;
    o.photometric_parts = parts;
    Loader loader(std::vector<Dataset>{ds, ds}, o);  // the same images twice: parts 0 and 1
    loader.start_epoch(0);
    Epoch out;
    while (auto b = loader.next()) {
      out.images.push_back(b->images.to_vector<float>());
      out.labels.push_back(b->labels.to_vector<uint8_t>());
    }
    return out;
  };
  const ColorJitter j{.brightness = 0.4, .contrast = 0.4, .saturation = 0.4, .hue = 0.1};
  const Epoch plain = epoch({}, {}), first = epoch(j, {true, false}), all = epoch(j, {});
  ASSERT_EQ(plain.images.size(), 8u);
  EXPECT_EQ(first.labels, plain.labels);
  EXPECT_EQ(all.labels, plain.labels);
  for (size_t k = 0; k < 8; ++k) {
    const bool source_part = k < 4;
    EXPECT_EQ(first.images[k] == plain.images[k], !source_part) << "sample " << k;
    EXPECT_NE(all.images[k], plain.images[k]) << "sample " << k;
  }
  // The blur follows the jitter in the same stream: adding it leaves the jitter as it was
  // where it does not fire, and touches the same parts only.
  const Epoch blurred = epoch(j, {true, false}, {.probability = 0.5, .sigma_lo = 1, .sigma_hi = 2});
  EXPECT_EQ(blurred.labels, plain.labels);
  int fired = 0;
  for (size_t k = 0; k < 8; ++k) {
    if (k >= 4) EXPECT_EQ(blurred.images[k], plain.images[k]) << "sample " << k;
    else fired += blurred.images[k] != first.images[k];
  }
  EXPECT_GT(fired, 0);
}
