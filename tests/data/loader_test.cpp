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

namespace {

// A GTA5-layout tree of 40x24 images, road (labelId 7) everywhere but a 3x3 block of the
// given labelId (0: none) at a place that moves with the image. Returns its root.
std::string write_block_tree(const TempDir& d, const std::vector<uint8_t>& block_ids) {
  const int w = 40, h = 24;
  for (size_t i = 0; i < block_ids.size(); ++i) {
    const std::string stem = "0000" + std::to_string(i + 1);
    write_png(d.file("blocks/images/" + stem + ".png"), tu::pattern_image(w, h, int(i)));
    std::vector<uint8_t> ids(size_t(w * h), 7);
    const int x0 = 3 + int(i) * 5, y0 = 2 + int(i) * 3;
    if (block_ids[i] != 0)
      for (int y = y0; y < y0 + 3; ++y)
        for (int x = x0; x < x0 + 3; ++x) ids[size_t(y * w + x)] = block_ids[i];
    tu::write_palette_png(d.file("blocks/labels/" + stem + ".png"), w, h, ids);
  }
  return d.path() + "/blocks";
}

constexpr uint8_t kCar = 13, kBicycle = 18;  // trainIds of labelIds 26 and 33

ClassFirstSampling car_and_bicycle(double probability, int64_t end_index, std::vector<int64_t> car,
                                   std::vector<int64_t> bicycle, double car_weight = 1, double bicycle_weight = 3) {
  ClassFirstSampling cf;
  cf.probability = probability;
  cf.end_index = end_index;
  cf.class_weight.assign(19, 0.0);
  cf.class_weight[kCar] = car_weight;
  cf.class_weight[kBicycle] = bicycle_weight;
  cf.class_weight[0] = 5;  // road: no images listed, so never drawn
  cf.images_with_class.resize(19);
  cf.images_with_class[kCar] = std::move(car);
  cf.images_with_class[kBicycle] = std::move(bicycle);
  return cf;
}

}  // namespace

// DAFormer's order of draws: a class with probability ∝ its weight, then an image holding it,
// the crop centred on the class.
TEST(Loader, ClassFirstSamplingDrawsAClassThenAnImageHoldingItAndCentresOnIt) {
  TempDir d;
  const Dataset ds = open_gta5(write_block_tree(d, {26, 26, 26, 33, 0, 0}));
  LoaderOptions o{.batch_size = 1, .workers = 2, .drop_last = false, .seed = 5,
                  .augment_params = {.min_scale = 0.75, .max_scale = 1.5, .crop_width = 8, .crop_height = 8}};
  o.class_first = car_and_bicycle(1.0, 6, {0, 1, 2}, {3});
  Loader loader(ds, o);
  std::vector<int> drawn(6, 0);
  for (int64_t e = 0; e < 300; ++e)
    for (int64_t index : loader.epoch_order(e)) ++drawn[size_t(index)];
  const double total = 300 * 6;
  EXPECT_NEAR(drawn[3] / total, 0.75, 0.04) << "bicycle, weight 3 of 4";
  for (int i : {0, 1, 2}) EXPECT_NEAR(drawn[size_t(i)] / total, 0.25 / 3, 0.03) << "car image " << i;
  EXPECT_EQ(drawn[4] + drawn[5], 0) << "road is weighted but lists no image";
  for (int64_t e = 0; e < 5; ++e) {
    loader.start_epoch(e);
    while (auto b = loader.next()) {
      const std::vector<uint8_t> l = b->labels.to_vector<uint8_t>();
      const uint8_t want = b->indices[0] == 3 ? kBicycle : kCar;
      EXPECT_NE(std::find(l.begin(), l.end(), want), l.end())
          << "epoch " << e << ": the crop of image " << b->indices[0] << " misses its class";
    }
  }
}

// Only slots scheduled below end_index are replaced, about `probability` of them, and every
// slot left alone is bit for bit what the loader gives without class-first sampling.
TEST(Loader, ClassFirstSamplingLeavesTheOtherSlotsAsTheyWere) {
  TempDir d;
  const Dataset ds = open_gta5(write_block_tree(d, {26, 0, 0, 33, 0, 0}));
  auto run = [&](bool class_first) {
    LoaderOptions o{.batch_size = 1, .workers = 2, .drop_last = false, .seed = 9,
                    .augment_params = {.crop_width = 16, .crop_height = 12}};
    if (class_first) o.class_first = car_and_bicycle(0.5, 6, {0}, {3});
    Loader loader(std::vector<Dataset>{ds, ds}, o);  // indices 6-11: the "target" part
    std::vector<Epoch> epochs;
    for (int64_t e = 0; e < 20; ++e) {
      loader.start_epoch(e);
      Epoch out;
      while (auto b = loader.next()) {
        out.images.push_back(b->images.to_vector<float>());
        out.labels.push_back(b->labels.to_vector<uint8_t>());
        out.indices.push_back(b->indices[0]);
      }
      epochs.push_back(std::move(out));
    }
    return epochs;
  };
  const std::vector<Epoch> plain = run(false), sampled = run(true);
  int replaced = 0, eligible = 0;
  for (size_t e = 0; e < plain.size(); ++e)
    for (size_t k = 0; k < 12; ++k) {
      const int64_t was = plain[e].indices[k], now = sampled[e].indices[k];
      if (was >= 6) {
        EXPECT_EQ(now, was) << "slot " << k << " of epoch " << e << " is past end_index";
      } else if (was != 0 && was != 3) {
        ++eligible;
        replaced += now != was;
      }
      if (now == was && (was >= 6 || (was != 0 && was != 3))) {
        EXPECT_EQ(sampled[e].labels[k], plain[e].labels[k]) << "slot " << k << " of epoch " << e;
        EXPECT_EQ(sampled[e].images[k], plain[e].images[k]) << "slot " << k << " of epoch " << e;
      }
      if (now != was) EXPECT_TRUE(now == 0 || now == 3) << "a replaced slot holds car or bicycle";
    }
  EXPECT_NEAR(double(replaced) / eligible, 0.5, 0.1) << replaced << " of " << eligible;
}

// Class-first batches do not depend on the number of workers, and an image drawn twice in
// one epoch is augmented twice.
TEST(Loader, ClassFirstSamplingIsWorkerIndependentAndAugmentsARepeatAnew) {
  TempDir d;
  const Dataset ds = open_gta5(write_block_tree(d, {0, 0, 33, 0}));
  auto run = [&](int workers) {
    LoaderOptions o{.batch_size = 2, .workers = workers, .prefetch_batches = 2, .drop_last = false, .seed = 4,
                    .augment_params = {.min_scale = 0.75, .max_scale = 1.5, .crop_width = 12, .crop_height = 10}};
    o.class_first = car_and_bicycle(1.0, 4, {}, {2});
    Loader loader(ds, o);
    loader.start_epoch(3);
    Epoch out;
    while (auto b = loader.next()) {
      out.images.push_back(b->images.to_vector<float>());
      out.indices.insert(out.indices.end(), b->indices.begin(), b->indices.end());
    }
    return out;
  };
  const Epoch ref = run(0);
  EXPECT_EQ(ref.indices, (std::vector<int64_t>{2, 2, 2, 2}));
  for (int workers : {1, 3}) {
    const Epoch e = run(workers);
    EXPECT_EQ(e.indices, ref.indices);
    EXPECT_EQ(e.images, ref.images) << workers << " workers";
  }
  const size_t half = ref.images[0].size() / 2;
  const std::vector<float> a(ref.images[0].begin(), ref.images[0].begin() + long(half)),
      b(ref.images[0].begin() + long(half), ref.images[0].end());
  EXPECT_NE(a, b) << "two draws of image 2 in one batch got the same augmentation";
}
