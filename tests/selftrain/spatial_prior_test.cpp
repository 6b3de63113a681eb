// Spatial priors against a brute-force 2-D Gaussian convolution, their invariants (sums,
// uniform unseen classes, resizing, ignore, σ scaling), files, a GTA5 tree, and their effect
// on pseudo-labels.
#include "selftrain/spatial_prior.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <tuple>
#include <utility>
#include <vector>

#include "tests/support/expect_close.h"
#include "selftrain/pseudo_labels.h"
#include "tests/data/data_test_util.h"
#include "weights/safetensors.h"

namespace cbst {
namespace {

using testing::error_of;

using data::Labels;
using data::test_util::TempDir;

Labels single_pixel(int h, int w, int y, int x, uint8_t cls = 0) {
  Labels l = Labels::blank(w, h);
  l.ids[size_t(y * w + x)] = cls;
  return l;
}

Labels random_labels(std::mt19937& rng, int h, int w, int classes) {
  Labels l = Labels::blank(w, h);
  std::uniform_int_distribution<int> id(0, classes);  // `classes` stands for ignore
  for (uint8_t& v : l.ids) {
    const int c = id(rng);
    v = c == classes ? data::kIgnoreLabel : uint8_t(c);
  }
  return l;
}

// The definition, written independently: nearest-neighbour counts, a 2-D Gaussian over the
// whole (2Ry+1)×(2Rx+1) rectangle normalised over it, zero padding, per-class normalisation.
struct Reference {
  int classes, h, w;
  std::vector<double> counts;  // classes × h × w
  Reference(int c, int gh, int gw) : classes(c), h(gh), w(gw), counts(size_t(c * gh * gw), 0) {}

  void add(const Labels& l) {
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const int sy = int(std::floor(double(y) * l.height / h)), sx = int(std::floor(double(x) * l.width / w));
        const uint8_t id = l.ids[size_t(sy * l.width + sx)];
        if (id != data::kIgnoreLabel) counts[size_t((id * h + y) * w + x)] += 1;
      }
  }
  std::vector<float> prior(double sigma_y, double sigma_x, int ry, int rx) const {
    auto g = [](int k, double s) { return s > 0 ? std::exp(-double(k * k) / (2 * s * s)) : double(k == 0); };
    double z = 0;
    for (int dy = -ry; dy <= ry; ++dy)
      for (int dx = -rx; dx <= rx; ++dx) z += g(dy, sigma_y) * g(dx, sigma_x);
    std::vector<float> out(counts.size());
    for (int c = 0; c < classes; ++c) {
      std::vector<double> s(size_t(h * w), 0);
      double total = 0;
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          for (int dy = -ry; dy <= ry; ++dy)
            for (int dx = -rx; dx <= rx; ++dx) {
              const int yy = y + dy, xx = x + dx;
              if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
              s[size_t(y * w + x)] += g(dy, sigma_y) * g(dx, sigma_x) / z * counts[size_t((c * h + yy) * w + xx)];
            }
          total += s[size_t(y * w + x)];
        }
      for (int i = 0; i < h * w; ++i)
        out[size_t(c * h * w + i)] = total > 0 ? float(s[size_t(i)] / total) : float(1.0 / (h * w));
    }
    return out;
  }
};

// Values are f32 roundings of double results (relative error 2^-24); 1e-6 relative leaves
// room for the different summation orders of the separable and the 2-D convolution.
void expect_near_all(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(double(got[i]) - double(want[i]));
    worst = std::max(worst, err / (1e-12 + 1e-6 * std::abs(double(want[i]))));
    ASSERT_LE(err, 1e-12 + 1e-6 * std::abs(double(want[i]))) << what << " at " << i;
  }
  std::printf("[ info ] %s: worst error used %.3g of the tolerance\n", what, worst);
}

TEST(SpatialPrior, SinglePixelGivesTheNormalisedGaussianCentredThere) {
  // σ = 3, support 18 → taps ±9; the pixel sits far from the borders, so nothing is lost.
  SpatialPriorAccumulator acc({.height = 40, .width = 50, .sigma = 3, .support = 18, .num_classes = 1});
  acc.add(single_pixel(40, 50, 20, 25));
  const std::vector<float> q = acc.finalize().to_vector<float>();
  double z = 0;
  for (int dy = -9; dy <= 9; ++dy)
    for (int dx = -9; dx <= 9; ++dx) z += std::exp(-(dy * dy + dx * dx) / 18.0);
  std::vector<float> want(q.size(), 0.0f);
  for (int dy = -9; dy <= 9; ++dy)
    for (int dx = -9; dx <= 9; ++dx)
      want[size_t((20 + dy) * 50 + 25 + dx)] = float(std::exp(-(dy * dy + dx * dx) / 18.0) / z);
  expect_near_all(q, want, "closed form");
  EXPECT_EQ(std::max_element(q.begin(), q.end()) - q.begin(), 20 * 50 + 25);
}

TEST(SpatialPrior, CornerPixelMatchesZeroPaddedBruteForce) {
  SpatialPriorAccumulator acc({.height = 12, .width = 15, .sigma = 2, .support = 12, .num_classes = 1});
  Reference ref(1, 12, 15);
  for (const Labels& l : {single_pixel(12, 15, 1, 0), single_pixel(12, 15, 11, 14)}) {
    acc.add(l);
    ref.add(l);
  }
  expect_near_all(acc.finalize().to_vector<float>(), ref.prior(2, 2, 6, 6), "corners");
}

TEST(SpatialPrior, RandomMapsOfMixedSizesMatchBruteForce) {
  std::mt19937 rng(7);
  // Grid 9×13 against maps of mean size 18×26: σ and the support halve on both axes.
  SpatialPriorAccumulator acc({.height = 9, .width = 13, .sigma = 4, .support = 20, .num_classes = 4});
  Reference ref(4, 9, 13);
  for (auto [h, w] : std::vector<std::pair<int, int>>{{18, 26}, {12, 20}, {24, 32}}) {
    const Labels l = random_labels(rng, h, w, 3);  // class 3 is never drawn
    acc.add(l);
    ref.add(l);
  }
  EXPECT_EQ(acc.image_size(), (std::pair<double, double>{18.0, 26.0}));
  expect_near_all(acc.finalize().to_vector<float>(), ref.prior(2, 2, 5, 5), "random");
}

TEST(SpatialPrior, EveryClassSumsToOneAndUnseenClassesAreUniform) {
  std::mt19937 rng(3);
  SpatialPriorAccumulator acc({.height = 31, .width = 47, .num_classes = 6, .image_height = 310, .image_width = 470});
  for (int i = 0; i < 4; ++i) acc.add(random_labels(rng, 62, 94, 4));  // classes 4, 5 unseen
  const Tensor prior = acc.finalize();
  ASSERT_EQ(prior.shape(), (Shape{6, 31, 47}));
  const std::vector<float> q = prior.to_vector<float>();
  for (int c = 0; c < 6; ++c) {
    double sum = 0;
    for (int i = 0; i < 31 * 47; ++i) sum += q[size_t(c * 31 * 47 + i)];
    EXPECT_NEAR(sum, 1.0, 1e-6) << "class " << c;  // the task's bound; f32 rounding gives ~1e-7
    if (c < 4) continue;
    for (int i = 0; i < 31 * 47; ++i) ASSERT_EQ(q[size_t(c * 31 * 47 + i)], float(1.0 / (31 * 47)));
  }
  EXPECT_EQ(acc.pixels_seen()[4], 0);
  // With no map at all every class is uniform.
  const std::vector<float> empty = SpatialPriorAccumulator({.height = 2, .width = 2, .num_classes = 2})
                                       .finalize().to_vector<float>();
  EXPECT_EQ(empty, std::vector<float>(8, 0.25f));
}

TEST(SpatialPrior, LabelsAreResizedByNearestNeighbour) {
  // 6×9 → 3×4 samples rows {0, 2, 4} and columns {0, 2, 4, 6} (⌊dst·in/out⌋).
  SpatialPriorAccumulator down({.height = 3, .width = 4, .sigma = 0, .num_classes = 2});
  Labels l = single_pixel(6, 9, 2, 4, 0);
  l.ids[size_t(3 * 9 + 5)] = 1;  // between sampled rows and columns: invisible on the grid
  down.add(l);
  std::vector<float> want(24, 1.0f / 12);
  std::fill(want.begin(), want.begin() + 12, 0.0f);
  want[size_t(1 * 4 + 2)] = 1.0f;
  EXPECT_EQ(down.finalize().to_vector<float>(), want);
  EXPECT_EQ(down.pixels_seen(), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(down.grid_counts(), (std::vector<int64_t>{1, 0}));

  // 2×2 → 4×4: every label pixel covers a 2×2 block.
  SpatialPriorAccumulator up({.height = 4, .width = 4, .sigma = 0, .num_classes = 1});
  up.add(single_pixel(2, 2, 1, 0));
  const std::vector<float> q = up.finalize().to_vector<float>();
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) EXPECT_EQ(q[size_t(y * 4 + x)], (y >= 2 && x < 2) ? 0.25f : 0.0f);
}

TEST(SpatialPrior, IgnorePixelsCountForNothing) {
  SpatialPriorOptions o{.height = 10, .width = 10, .sigma = 1.5, .support = 9, .num_classes = 3};
  SpatialPriorAccumulator with_ignore(o), plain(o);
  with_ignore.add(Labels::blank(10, 10));  // all ignore
  with_ignore.add(single_pixel(10, 10, 4, 6, 2));
  plain.add(single_pixel(10, 10, 4, 6, 2));
  EXPECT_EQ(with_ignore.finalize().to_vector<float>(), plain.finalize().to_vector<float>());
  EXPECT_EQ(with_ignore.pixels_seen(), (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(with_ignore.images(), 2u);
}

TEST(SpatialPrior, SigmaAndSupportScaleWithTheGridPerAxis) {
  EXPECT_EQ(spatial_prior_kernel(kSpatialPriorSigma, kSpatialPriorSupport, 1052, 1052).size(), 71u);
  EXPECT_EQ(spatial_prior_kernel(kSpatialPriorSigma, kSpatialPriorSupport, 1052 / 4, 1052).size(), 17u);  // ±8.75
  EXPECT_EQ(spatial_prior_kernel(0, 70, 100, 100), std::vector<double>{1.0});

  // A 2×2 block at even coordinates of an 80×160 map lands on one cell of a 40×40 grid:
  // y is halved, x quartered, so σ_y = σ/2 = 2, σ_x = σ/4 = 1, taps ±(24/2)/2 = 6 and ±3.
  SpatialPriorAccumulator acc({.height = 40, .width = 40, .sigma = 4, .support = 24, .num_classes = 1});
  Reference ref(1, 40, 40);
  Labels l = Labels::blank(160, 80);
  for (int y : {40, 41})
    for (int x : {80, 81, 82, 83}) l.ids[size_t(y * 160 + x)] = 0;
  acc.add(l);
  ref.add(l);
  const std::vector<float> q = acc.finalize().to_vector<float>();
  expect_near_all(q, ref.prior(2, 1, 6, 3), "anisotropic");
  double var_y = 0, var_x = 0;
  for (int y = 0; y < 40; ++y)
    for (int x = 0; x < 40; ++x) {
      var_y += q[size_t(y * 40 + x)] * (y - 20) * (y - 20);
      var_x += q[size_t(y * 40 + x)] * (x - 20) * (x - 20);
    }
  // Truncation at ±3σ keeps about 97.3% of a Gaussian's variance; 4% covers it.
  EXPECT_NEAR(var_y, 4.0, 0.16);
  EXPECT_NEAR(var_x, 1.0, 0.04);
}

TEST(SpatialPrior, MergeEqualsAddingEverythingToOne) {
  std::mt19937 rng(11);
  const SpatialPriorOptions o{.height = 8, .width = 8, .sigma = 5, .support = 30, .num_classes = 3};
  SpatialPriorAccumulator one(o), a(o), b(o);
  for (int i = 0; i < 6; ++i) {
    const Labels l = random_labels(rng, 16 + i, 16, 3);
    one.add(l);
    (i % 2 ? a : b).add(l);
  }
  a.merge(b);
  EXPECT_EQ(a.finalize().to_vector<float>(), one.finalize().to_vector<float>());
  EXPECT_THROW(a.merge(SpatialPriorAccumulator({.height = 8, .width = 9, .num_classes = 3})), Error);
}

TEST(SpatialPrior, BadLabelsAndOptionsAreErrors) {
  SpatialPriorAccumulator acc({.height = 4, .width = 4, .num_classes = 3});
  EXPECT_THROW(acc.add(single_pixel(4, 4, 1, 1, 5)), Error);  // 5 is no class of 3
  EXPECT_EQ(acc.images(), 0u);
  EXPECT_THROW(acc.add(Labels{.width = 4, .height = 4, .ids = {1, 2}}), Error);
  EXPECT_THROW(SpatialPriorAccumulator({.height = 0, .width = 4}), Error);
  EXPECT_THROW(SpatialPriorAccumulator({.height = 4, .width = 4, .sigma = -1}), Error);
  EXPECT_THROW(SpatialPriorAccumulator({.height = 4, .width = 4, .num_classes = 256}), Error);
}

TEST(SpatialPriorFile, RoundTripsTensorAndMetadata) {
  TempDir d;
  std::mt19937 rng(5);
  SpatialPriorAccumulator acc({.height = 6, .width = 7, .num_classes = 19});
  acc.add(random_labels(rng, 60, 70, 19));
  const Tensor prior = acc.finalize();
  const std::string path = d.file("prior.safetensors");
  save_spatial_prior(path, prior,
                     {.image_height = 60, .image_width = 70, .images = 1, .source = "gta5=/x", .class_space = "cityscapes19"});
  const SpatialPrior got = load_spatial_prior(path);
  EXPECT_EQ(got.prior.shape(), (Shape{19, 6, 7}));
  EXPECT_EQ(got.prior.to_vector<float>(), prior.to_vector<float>());
  EXPECT_EQ(got.metadata.sigma, kSpatialPriorSigma);  // exact: shortest round-trip text
  EXPECT_EQ(got.metadata.support, 70.0);
  EXPECT_EQ(got.metadata.image_height, 60.0);
  EXPECT_EQ(got.metadata.image_width, 70.0);
  EXPECT_EQ(got.metadata.images, 1);
  EXPECT_EQ(got.metadata.source, "gta5=/x");
  const weights::TensorMap raw = weights::read_safetensors(path);
  EXPECT_EQ(raw.metadata.at("num_classes"), "19");
  EXPECT_EQ(raw.metadata.at("grid"), "6x7");
}


TEST(SpatialPriorFile, MalformedFilesAreClearErrors) {
  TempDir d;
  const std::string other = d.file("other.safetensors"), rank2 = d.file("rank2.safetensors"),
                    negative = d.file("negative.safetensors"), junk = d.file("junk.safetensors");
  weights::TensorMap m;
  m.insert("probs", Tensor::ones({2, 3, 3}));
  weights::write_safetensors(other, m);
  m = {};
  m.insert("prior", Tensor::ones({3, 3}));
  weights::write_safetensors(rank2, m);
  m = {};
  m.insert("prior", Tensor::full({1, 2, 2}, -0.5));
  weights::write_safetensors(negative, m);
  data::test_util::write_text(junk, "not a safetensors file");

  EXPECT_NE(error_of([&] { load_spatial_prior(other); }).find("no tensor named 'prior' (the file holds 'probs')"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_spatial_prior(rank2); }).find("expected rank 3 (C, H, W)"), std::string::npos);
  EXPECT_NE(error_of([&] { load_spatial_prior(negative); }).find("negative or not finite"), std::string::npos);
  EXPECT_NE(error_of([&] { load_spatial_prior(junk); }).find(junk), std::string::npos);
}

// GTA5 layout: images/NNNNN.png and palette labels/NNNNN.png holding Cityscapes labelIds.
// labelId 7 = road (trainId 0), 23 = sky (10), 26 = car (13), 0 = unlabelled (ignore).
TEST(SpatialPriorDataset, CountsAGta5TreeThroughItsLabelMap) {
  TempDir d;
  std::vector<Labels> train_ids;
  for (auto [i, h, w] : std::vector<std::tuple<int, int, int>>{{1, 12, 20}, {2, 6, 10}}) {
    std::vector<uint8_t> ids(size_t(h * w));
    Labels t = Labels::blank(w, h);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const bool top = y < h / 2, edge = x == 0;
        ids[size_t(y * w + x)] = edge ? 0 : top ? 23 : (x < w / 2 ? 7 : 26);
        t.ids[size_t(y * w + x)] = edge ? 255 : top ? 10 : (x < w / 2 ? 0 : 13);
      }
    train_ids.push_back(t);
    const std::string stem = "0000" + std::to_string(i);
    data::write_png(d.file("gta/images/" + stem + ".png"), data::test_util::pattern_image(w, h, i));
    data::test_util::write_palette_png(d.file("gta/labels/" + stem + ".png"), w, h, ids);
  }
  const data::Dataset ds = data::open_dataset("gta5=" + d.path() + "/gta");
  SpatialPriorOptions o{.height = 6, .width = 8, .sigma = 3, .num_classes = 19, .threads = 2};
  size_t calls = 0;
  o.progress = [&](size_t done, size_t total) {
    ++calls;
    EXPECT_EQ(total, 2u);
    EXPECT_LE(done, total);
  };
  const SpatialPriorResult r = compute_spatial_prior_with_stats(ds, o);
  EXPECT_EQ(calls, 2u);
  EXPECT_EQ(r.images, 2u);
  EXPECT_EQ(r.image_height, 9.0);
  EXPECT_EQ(r.image_width, 15.0);

  SpatialPriorAccumulator direct(o);
  for (const Labels& t : train_ids) direct.add(t);
  EXPECT_EQ(r.prior.to_vector<float>(), direct.finalize().to_vector<float>());
  EXPECT_EQ(r.pixels_seen, direct.pixels_seen());
  EXPECT_EQ(r.pixels_seen[10], 6 * 19 + 3 * 9);  // sky: top halves minus column 0
  o.threads = 1;
  EXPECT_EQ(compute_spatial_prior(ds, o).to_vector<float>(), r.prior.to_vector<float>());

  // Road lives in the bottom half: its prior must weigh the bottom rows more than the top.
  const std::vector<float> q = r.prior.to_vector<float>();
  double top = 0, bottom = 0;
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 8; ++x) (y < 3 ? top : bottom) += q[size_t(0 * 48 + y * 8 + x)];
  EXPECT_GT(bottom, 2 * top);
  EXPECT_EQ(q[size_t(18 * 48)], 1.0f / 48);  // bicycle: never seen
}

// s = q·p: a prior that puts class 1 in the top half stops class 1 from being selected in the
// bottom half even where the network prefers it.
TEST(SpatialPriorPseudoLabels, APriorOnOneHalfMovesThatClassThere) {
  constexpr int kSize = 16;
  SpatialPriorAccumulator acc({.height = kSize, .width = kSize, .sigma = 1, .support = 6, .num_classes = 2});
  Labels halves = Labels::blank(kSize, kSize);
  for (int y = 0; y < kSize; ++y)
    for (int x = 0; x < kSize; ++x) halves.ids[size_t(y * kSize + x)] = y < kSize / 2 ? 1 : 0;
  acc.add(halves);
  // Interpolated bilinearly to 32×32 by pseudo_labels.h.
  const Tensor prior = acc.finalize();

  std::mt19937 rng(1);
  std::uniform_real_distribution<float> p1(0.3f, 0.7f);
  std::vector<float> probs(size_t(2 * 32 * 32));
  for (int i = 0; i < 32 * 32; ++i) {
    probs[size_t(32 * 32 + i)] = p1(rng);
    probs[size_t(i)] = 1.0f - probs[size_t(32 * 32 + i)];
  }
  const Tensor p = Tensor::from_vector(probs, {1, 2, 32, 32});
  const ThresholdParams params{.policy = ThresholdPolicy::cbst, .portion = 0.5, .label_size = {32, 32}};

  auto class1_rows = [&](const Tensor& q) {
    const ClassThresholds t = class_thresholds(p, q, params);
    const std::vector<uint8_t> l = pseudo_labels(p, q, t.thresholds, {.label_size = {32, 32}}).labels.to_vector<uint8_t>();
    std::pair<int, int> top_bottom{0, 0};
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        if (l[size_t(y * 32 + x)] == 1) (y < 16 ? top_bottom.first : top_bottom.second) += 1;
    return top_bottom;
  };
  const auto [plain_top, plain_bottom] = class1_rows(Tensor());
  EXPECT_GT(plain_bottom, 50);  // without a prior class 1 is picked everywhere
  EXPECT_GT(plain_top, 50);
  const auto [sp_top, sp_bottom] = class1_rows(prior);
  EXPECT_GT(sp_top, 100);
  // Only the blurred boundary rows (grid row 8 ± 3 taps → label rows < 22) may keep some.
  EXPECT_LT(sp_bottom, plain_bottom / 4);
  std::printf("[ info ] class-1 pseudo-labels top/bottom: no prior %d/%d, prior %d/%d\n", plain_top,
              plain_bottom, sp_top, sp_bottom);
}

}  // namespace
}  // namespace cbst
