// recompute_batch_norm_statistics (AdaBN) on folders of images written here: the running
// statistics against the batch statistics counted by brute force, batches split by image size,
// dropout off, the weights and the model's mode kept, and the refusals.
#include "selftrain/batch_norm_statistics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/image.h"
#include "data/transforms.h"
#include "engine/autograd.h"
#include "layers/batch_norm2d.h"
#include "layers/dropout.h"
#include "models/segmentation_model.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;

constexpr double kEps = 1e-5;

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("cbst_bn_statistics_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Images a0.png, a1.png, … of the given sizes, each with its own pattern.
data::Dataset write_images(const fs::path& root, const std::vector<std::pair<int, int>>& sizes) {
  for (size_t i = 0; i < sizes.size(); ++i) {
    const auto [w, h] = sizes[i];
    data::Image im = data::Image::blank(w, h, 3, 0);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        uint8_t* px = im.row(y) + x * 3;
        px[0] = uint8_t(17 * x + 29 * y + 50 * int(i));
        px[1] = uint8_t((x * y * 13 + 7 * int(i)) % 251);
        px[2] = uint8_t(200 - 9 * y + 3 * x * int(i));
      }
    data::write_png((root / ("a" + std::to_string(i) + ".png")).string(), im);
  }
  return data::open_images(root.string());
}

// bn1 -> bn2 on the 3 input channels, with a dropout layer between them when `with_dropout`;
// with_norm false: the dropout layer only.
class ToyNormModel : public SegmentationModel {
 public:
  explicit ToyNormModel(bool with_norm, bool with_dropout = false) {
    num_classes_ = 3;
    if (with_norm) bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(BatchNorm2dParams{.num_features = 3}));
    if (with_dropout || !with_norm) drop_ = register_module("drop", std::make_shared<Dropout>(DropoutOptions{.p = 0.5}));
    if (with_norm) bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(BatchNorm2dParams{.num_features = 3}));
  }
  Tensor logits(const Tensor& x) override {
    Tensor y = bn1_ ? bn1_->forward(x) : x;
    if (drop_) y = drop_->forward(y);
    return bn2_ ? bn2_->forward(y) : y;
  }
  std::string name() const override { return "toy"; }
  int64_t output_stride() const override { return 1; }
  std::string input_convention() const override { return "torchvision"; }

  std::shared_ptr<BatchNorm2d> bn1_, bn2_;
  std::shared_ptr<Dropout> drop_;
};

struct ChannelStats {
  double mean[3] = {0, 0, 0};
  double unbiased_var[3] = {0, 0, 0};
  double biased_var[3] = {0, 0, 0};
};

// Per channel over every pixel of the images `first` … `last` (normalised as torchvision's).
ChannelStats batch_stats(const data::Dataset& ds, size_t first, size_t last) {
  std::vector<float> values[3];
  for (size_t i = first; i <= last; ++i) {
    const data::Image im = ds.read_image(i);
    std::vector<float> chw(size_t(3) * im.width * im.height);
    data::normalize(chw.data(), im, data::Normalization::torchvision());
    const size_t plane = size_t(im.width) * im.height;
    for (int c = 0; c < 3; ++c) values[c].insert(values[c].end(), chw.begin() + c * plane, chw.begin() + (c + 1) * plane);
  }
  ChannelStats s;
  for (int c = 0; c < 3; ++c) {
    const double m = double(values[c].size());
    double sum = 0, sq = 0;
    for (float v : values[c]) sum += v;
    s.mean[c] = sum / m;
    for (float v : values[c]) sq += (v - s.mean[c]) * (v - s.mean[c]);
    s.biased_var[c] = sq / m;
    s.unbiased_var[c] = sq / (m - 1);
  }
  return s;
}

std::vector<double> values(const Tensor& t) { return t.to(DType::f64).to_vector<double>(); }

TEST(BatchNormStatistics, RunningStatisticsAreTheMeanOverBatchesSplitBySize) {
  TempDir dir;
  // Batch 2: a0 a1 (8×6), then a2 (10×4) alone, its size differing, then a3 (8×6) alone.
  const data::Dataset ds = write_images(dir.path(), {{8, 6}, {8, 6}, {10, 4}, {8, 6}});
  ToyNormModel model(true);
  model.eval();
  std::map<std::string, std::vector<double>> before;
  for (const auto& [name, t] : model.named_parameters()) before[name] = values(t);

  const BatchNormStatisticsSummary s = recompute_batch_norm_statistics(model, ds, {.batch = 2});
  EXPECT_EQ(s.layers, 2);
  EXPECT_EQ(s.images, 4);
  EXPECT_EQ(s.batches, 3);

  const std::vector<std::pair<size_t, size_t>> batches = {{0, 1}, {2, 2}, {3, 3}};
  for (int c = 0; c < 3; ++c) {
    double mean1 = 0, var1 = 0, var2 = 0;
    for (const auto& [first, last] : batches) {
      const ChannelStats b = batch_stats(ds, first, last);
      const double m = double(last - first + 1) * (first == 2 ? 40.0 : 48.0);
      mean1 += b.mean[c] / 3.0;
      var1 += b.unbiased_var[c] / 3.0;
      // bn2 sees bn1's output, (x − μ)/√(σ² + ε) with the batch's own statistics.
      var2 += m / (m - 1) * b.biased_var[c] / (b.biased_var[c] + kEps) / 3.0;
    }
    EXPECT_NEAR(values(model.bn1_->running_mean())[c], mean1, 1e-5) << "channel " << c;
    EXPECT_NEAR(values(model.bn1_->running_var())[c], var1, 1e-4 * var1) << "channel " << c;
    EXPECT_NEAR(values(model.bn2_->running_mean())[c], 0.0, 1e-5) << "channel " << c;
    EXPECT_NEAR(values(model.bn2_->running_var())[c], var2, 1e-4) << "channel " << c;
  }
  EXPECT_EQ(model.bn1_->num_batches_tracked().item<int64_t>(), 3);

  // The weights are untouched, the model is back in eval mode, the layers back to momentum.
  for (const auto& [name, t] : model.named_parameters())
    EXPECT_EQ(values(t), before.at(name)) << name;
  EXPECT_FALSE(model.training());
  EXPECT_FALSE(model.bn1_->params().cumulative_average);
  EXPECT_FALSE(model.bn2_->params().cumulative_average);
}

TEST(BatchNormStatistics, DropoutIsActiveAsInTraining) {
  // As torch's update_bn: the model runs in training mode. Dropout at p = 0.5 zeroes half of
  // bn1's normalised output and doubles the rest, so bn2 sees about twice the variance.
  TempDir dir;
  const data::Dataset ds = write_images(dir.path(), {{16, 12}, {16, 12}});
  ToyNormModel model(true, /*with_dropout=*/true);
  model.eval();
  recompute_batch_norm_statistics(model, ds, {.batch = 2});
  for (int c = 0; c < 3; ++c) {
    const double v = values(model.bn2_->running_var())[c];
    EXPECT_GT(v, 1.6) << "channel " << c;
    EXPECT_LT(v, 2.4) << "channel " << c;
  }
  EXPECT_FALSE(model.training());
}

TEST(BatchNormStatistics, EarlierStatisticsAreForgottenAndLimitTakesTheFirstImages) {
  TempDir dir;
  const data::Dataset ds = write_images(dir.path(), {{8, 6}, {8, 6}, {8, 6}});
  ToyNormModel model(true);
  model.train();
  recompute_batch_norm_statistics(model, ds, {.batch = 3});  // statistics of all three first
  const BatchNormStatisticsSummary s = recompute_batch_norm_statistics(model, ds, {.batch = 1, .limit = 1});
  EXPECT_EQ(s.images, 1);
  EXPECT_EQ(s.batches, 1);
  const ChannelStats first = batch_stats(ds, 0, 0);
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(values(model.bn1_->running_mean())[c], first.mean[c], 1e-5);
    EXPECT_NEAR(values(model.bn1_->running_var())[c], first.unbiased_var[c], 1e-4 * first.unbiased_var[c]);
  }
  EXPECT_TRUE(model.training());
}

TEST(BatchNormStatistics, FrozenLayersAreReEstimatedAndFrozenAgain) {
  TempDir dir;
  const data::Dataset ds = write_images(dir.path(), {{8, 6}, {8, 6}});
  ToyNormModel model(true);
  model.bn1_->freeze(/*train_affine=*/false);
  recompute_batch_norm_statistics(model, ds, {.batch = 2});
  const ChannelStats both = batch_stats(ds, 0, 1);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(values(model.bn1_->running_mean())[c], both.mean[c], 1e-5);
  EXPECT_TRUE(model.bn1_->frozen());
  EXPECT_FALSE(model.bn1_->weight().requires_grad());
  EXPECT_FALSE(model.bn2_->frozen());
  EXPECT_TRUE(model.bn2_->weight().requires_grad());
}

TEST(BatchNormStatistics, RefusesAModelWithoutBatchNormAndAnEmptySelection) {
  TempDir dir;
  const data::Dataset ds = write_images(dir.path(), {{8, 6}});
  ToyNormModel plain(false);
  EXPECT_EQ(batch_norm_layer_count(plain), 0);
  try {
    recompute_batch_norm_statistics(plain, ds);
    FAIL() << "a model without batch norm was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("has no batch-norm layer"), std::string::npos) << e.what();
  }
  ToyNormModel model(true);
  EXPECT_EQ(batch_norm_layer_count(model), 2);
  try {
    recompute_batch_norm_statistics(model, ds, {.limit = 0});
    FAIL() << "no images were accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("no images"), std::string::npos) << e.what();
  }
  EXPECT_EQ(values(model.bn1_->running_mean()), std::vector<double>(3, 0.0));  // left as it was
}

}  // namespace
}  // namespace cbst
