// evaluate_model on tiny Cityscapes trees written here, with models whose predictions are
// known pixel by pixel; every score is checked against a brute-force count.
#include "selftrain/evaluate.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/predictions.h"
#include "engine/autograd.h"
#include "layers/conv2d.h"
#include "tests/support/expect_close.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;
using data::ClassSpace;

constexpr int kCar = 13, kSky = 10;                             // trainIds
constexpr uint8_t kCarId = 26, kSkyId = 23, kRoadId = 7, kUnlabeledId = 0;  // labelIds

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("cbst_evaluate_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

// Red where the pattern says so, blue elsewhere: the model below predicts car on red, sky on blue.
bool is_red(int x, int y, int seed) { return (x * 3 + y * 5 + seed) % 7 < 3; }
// Ground truth labelIds: car, sky, road, unlabeled (ignored) in a pattern unlike the image's.
uint8_t gt_label_id(int x, int y, int seed) {
  const uint8_t ids[4] = {kCarId, kSkyId, kRoadId, kUnlabeledId};
  return ids[(x + 2 * y + seed) % 4];
}

struct Tree {
  std::string root;
  std::vector<std::string> stems;
  int width = 0, height = 0;
};

// ROOT/leftImg8bit/val/ulm/<stem>_leftImg8bit.png + ROOT/gtFine/val/ulm/<stem>_gtFine_labelIds.png
Tree write_cityscapes(const std::string& root, int images, int width, int height) {
  Tree t{root, {}, width, height};
  for (int i = 0; i < images; ++i) {
    const std::string stem = "ulm_000000_00000" + std::to_string(i);
    data::Image im = data::Image::blank(width, height, 3);
    data::Labels gt = data::Labels::blank(width, height);
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        uint8_t* p = im.row(y) + x * 3;
        p[0] = is_red(x, y, i) ? 255 : 0;
        p[2] = is_red(x, y, i) ? 0 : 255;
        gt.ids[size_t(y) * width + x] = gt_label_id(x, y, i);
      }
    fs::create_directories(root + "/leftImg8bit/val/ulm");
    fs::create_directories(root + "/gtFine/val/ulm");
    data::write_png(root + "/leftImg8bit/val/ulm/" + stem + "_leftImg8bit.png", im);
    data::write_png_grey(root + "/gtFine/val/ulm/" + stem + "_gtFine_labelIds.png", gt);
    t.stems.push_back(stem);
  }
  return t;
}

// A 1×1 convolution on the normalised image with 19 classes: car where red, sky where blue
// (torchvision normalisation puts R = 255 at +2.25 and R = 0 at −2.12; the margin is ~40).
class ColourModel : public SegmentationModel {
 public:
  ColourModel() {
    num_classes_ = 19;
    conv_ = register_module("conv", std::make_shared<Conv2d>(Conv2dParams{
                                        .in_channels = 3, .out_channels = 19, .kernel = 1, .pad = 0}));
    std::vector<float> w(19 * 3, 0.0f), b(19, -100.0f);
    w[kCar * 3 + 0] = 10.0f;
    w[kSky * 3 + 0] = -10.0f;
    b[kCar] = b[kSky] = 0.0f;
    NoGradGuard no_grad;
    conv_->weight().copy_(Tensor::from_vector(w, {19, 3, 1, 1}));
    conv_->bias().copy_(Tensor::from_vector(b, {19}));
  }
  Tensor logits(const Tensor& x) override { return conv_->forward(x); }
  std::string name() const override { return "colour-model"; }
  int64_t output_stride() const override { return 1; }
  std::string input_convention() const override { return "torchvision"; }

 private:
  std::shared_ptr<Conv2d> conv_;
};

// small-fcn that predicts `cls` everywhere: classifier weights 0, bias 10 at `cls`.
std::shared_ptr<SegmentationModel> constant_small_fcn(int cls) {
  auto model = create_model("small-fcn", {.num_classes = 19, .seed = 5});
  NoGradGuard no_grad;
  for (auto& [name, t] : model->named_parameters()) {
    if (name == "classifier.weight") t.zero_();
    if (name == "classifier.bias") {
      std::vector<float> b(19, 0.0f);
      b[cls] = 10.0f;
      t.copy_(Tensor::from_vector(b, {19}));
    }
  }
  return model;
}

// IoU per trainId (0..18) from a pixel-by-pixel count over the tree; `predict(x, y, i)` gives
// the predicted trainId. A class with no ground truth gets 0.
struct BruteForce {
  std::vector<double> iou;
  double miou = 0, pixel_accuracy = 0;
  int64_t valid = 0;
};
template <class Predict>
BruteForce brute_force(const Tree& t, Predict predict) {
  const auto& table = data::class_table(ClassSpace::cityscapes19);
  std::vector<int64_t> tp(19, 0), gt(19, 0), pred(19, 0);
  int64_t valid = 0, correct = 0;
  for (int i = 0; i < int(t.stems.size()); ++i)
    for (int y = 0; y < t.height; ++y)
      for (int x = 0; x < t.width; ++x) {
        int g = -1;
        for (int c = 0; c < 19; ++c)
          if (table[c].label_id == gt_label_id(x, y, i)) g = c;
        if (g < 0) continue;
        const int p = predict(x, y, i);
        ++valid;
        ++gt[g];
        ++pred[p];
        if (p == g) ++tp[g], ++correct;
      }
  BruteForce b;
  for (int c = 0; c < 19; ++c) {
    b.iou.push_back(gt[c] == 0 ? 0.0 : double(tp[c]) / double(gt[c] + pred[c] - tp[c]));
    b.miou += b.iou.back() / 19;
  }
  b.pixel_accuracy = double(correct) / double(valid);
  b.valid = valid;
  return b;
}

void expect_matches(const data::EvalResult& r, const BruteForce& b) {
  ASSERT_EQ(r.classes.size(), 19u);
  const data::Protocol protocol = data::protocol_from_name("19");
  for (size_t j = 0; j < r.classes.size(); ++j)
    EXPECT_NEAR(r.classes[j].iou, b.iou[protocol.classes[j]], 1e-12) << r.classes[j].name;
  EXPECT_NEAR(r.miou, b.miou, 1e-12);
  EXPECT_NEAR(r.pixel_accuracy, b.pixel_accuracy, 1e-12);
  EXPECT_EQ(r.valid_pixels, b.valid);
}

int colour_prediction(int x, int y, int i) { return is_red(x, y, i) ? kCar : kSky; }

TEST(EvaluateModel, ScoresAPerPixelModelLikeABruteForceCount) {
  TempDir d;
  const Tree t = write_cityscapes(d.path() + "/cs", 3, 11, 7);
  const data::Dataset ds = data::open_cityscapes(t.root, {.split = "val"});
  ColourModel model;
  std::vector<std::pair<int64_t, int64_t>> progress;
  const data::EvalResult r = evaluate_model(
      model, ds, {.progress = [&](int64_t done, int64_t total) { progress.emplace_back(done, total); }});
  EXPECT_EQ(r.images, 3);
  expect_matches(r, brute_force(t, colour_prediction));
  EXPECT_EQ(progress, (std::vector<std::pair<int64_t, int64_t>>{{1, 3}, {2, 3}, {3, 3}}));
  EXPECT_GT(r.classes[kCar].iou, 0.0);
  EXPECT_TRUE(r.classes[1].absent);  // sidewalk: no ground truth anywhere
}

TEST(EvaluateModel, ConstantSmallFcnWithScalesFlipAndInputScaleGivesTheBruteForceIou) {
  TempDir d;
  const Tree t = write_cityscapes(d.path() + "/cs", 2, 31, 21);  // scale 0.25: 8 x 5, enough for stride 4
  const data::Dataset ds = data::open_cityscapes(t.root, {.split = "val"});
  auto model = constant_small_fcn(kCar);
  model->train();
  EvaluateOptions options;
  options.inference = {.scales = {0.5, 0.75, 1.0}, .flip = true};
  options.input_scale = 0.5;
  const data::EvalResult r = evaluate_model(*model, ds, options);
  const BruteForce b = brute_force(t, [](int, int, int) { return kCar; });
  expect_matches(r, b);
  EXPECT_NEAR(r.classes[kCar].iou, b.pixel_accuracy, 1e-12) << "car IoU = car GT / valid pixels";
  EXPECT_TRUE(model->training()) << "the model's mode is restored";
}

TEST(EvaluateModel, SavesLabelIdsAndColourisedPredictionsThatScoreTheSame) {
  TempDir d;
  const Tree t = write_cityscapes(d.path() + "/cs", 3, 10, 6);
  const data::Dataset ds = data::open_cityscapes(t.root, {.split = "val"});
  ColourModel model;
  const std::string out = d.path() + "/pred";
  const data::EvalResult r = evaluate_model(model, ds, {.save_predictions = out});
  for (int i = 0; i < 3; ++i) {
    const data::RawLabels ids = data::read_label_values(out + "/labelIds/" + t.stems[i] + ".png");
    const data::Image color = data::read_image_rgb(out + "/color/" + t.stems[i] + "_color.png");
    ASSERT_EQ(ids.width, t.width);
    ASSERT_EQ(color.height, t.height);
    const auto& table = data::class_table(ClassSpace::cityscapes19);
    for (int y = 0; y < t.height; ++y)
      for (int x = 0; x < t.width; ++x) {
        const int c = colour_prediction(x, y, i);
        EXPECT_EQ(ids.values[size_t(y) * t.width + x], table[c].label_id);
        for (int k = 0; k < 3; ++k) EXPECT_EQ(color.row(y)[x * 3 + k], table[c].color[k]);
      }
  }
  // `cbst eval --predictions DIR/labelIds` scores the saved files the same.
  const data::EvalResult again = data::evaluate_predictions(ds, data::PredictionIndex(out + "/labelIds"), {});
  EXPECT_NEAR(again.miou, r.miou, 1e-12);
  EXPECT_EQ(again.valid_pixels, r.valid_pixels);

  // The first K only, and the model's own ids.
  const std::string limited = d.path() + "/limited";
  evaluate_model(model, ds, {.save_predictions = limited, .save_limit = 1, .save_train_ids = true});
  EXPECT_TRUE(fs::exists(limited + "/trainIds/" + t.stems[0] + ".png"));
  EXPECT_FALSE(fs::exists(limited + "/trainIds/" + t.stems[1] + ".png"));
  EXPECT_FALSE(fs::exists(limited + "/color/" + t.stems[1] + "_color.png"));
  const data::RawLabels train_ids = data::read_label_values(limited + "/trainIds/" + t.stems[0] + ".png");
  EXPECT_EQ(train_ids.values[0], colour_prediction(0, 0, 0));
}

TEST(EvaluateModel, MapsTheModelsClassesToTheProtocolsSpace) {
  TempDir d;
  const Tree t = write_cityscapes(d.path() + "/cs", 2, 9, 8);
  const data::Dataset ds = data::open_cityscapes(t.root, {.split = "val"});
  ColourModel model;
  const data::EvalResult r19 = evaluate_model(model, ds, {});
  const data::EvalResult r16 = evaluate_model(model, ds, {.protocol = data::protocol_from_name("16")});
  ASSERT_EQ(r16.classes.size(), 16u);
  // Car, sky and road keep their pixels in the 16-class space, so their IoUs do not change.
  int found = 0;
  for (const data::ClassScore& c16 : r16.classes)
    for (const data::ClassScore& c19 : r19.classes)
      if (c16.name == c19.name && (c16.name == "car" || c16.name == "sky" || c16.name == "road")) {
        EXPECT_NEAR(c16.iou, c19.iou, 1e-12) << c16.name;
        ++found;
      }
  EXPECT_EQ(found, 3);
  EXPECT_EQ(r16.valid_pixels, r19.valid_pixels);
}

TEST(EvaluateModel, NamesTheProblemForBadArguments) {
  TempDir d;
  const Tree t = write_cityscapes(d.path() + "/cs", 1, 6, 5);
  const data::Dataset ds = data::open_cityscapes(t.root, {.split = "val"});
  ColourModel model;
  auto message = [&](const EvaluateOptions& o) {
    try {
      evaluate_model(model, ds, o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({.input_scale = 0}).find("input scale"), std::string::npos);
  EXPECT_NE(message({.input_convention = "bgr"}).find("caffe"), std::string::npos);
  auto nthu_model = create_model("small-fcn", {.num_classes = 13});
  try {
    evaluate_model(*nthu_model, ds, {});
    ADD_FAILURE() << "a 13-class model on protocol 19 should be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nthu"), std::string::npos) << e.what();
  }
}

// The confusion matrix is counted by the CUDA kernel there. At scale 1 the colour model's
// margins are ~40 logits at every pixel, so both devices predict every pixel alike.
TEST(EvaluateModelCuda, MatchesTheCpu) {
  CBST_REQUIRE_CUDA();
  TempDir d;
  const Tree t = write_cityscapes(d.path() + "/cs", 2, 17, 11);
  const data::Dataset ds = data::open_cityscapes(t.root, {.split = "val"});
  ColourModel cpu, gpu;
  EvaluateOptions options;
  options.inference.flip = true;
  const data::EvalResult want = evaluate_model(cpu, ds, options);
  options.device = Device::cuda();
  const data::EvalResult got = evaluate_model(gpu, ds, options);
  EXPECT_EQ(got.valid_pixels, want.valid_pixels);
  for (size_t j = 0; j < want.classes.size(); ++j) EXPECT_NEAR(got.classes[j].iou, want.classes[j].iou, 1e-12);
  expect_matches(got, brute_force(t, colour_prediction));
}

}  // namespace
}  // namespace cbst
