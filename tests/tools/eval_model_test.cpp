// `cbst eval --model --checkpoint` end to end: writes a small-fcn checkpoint that predicts one
// class everywhere and a tiny Cityscapes tree, runs the program, and checks its JSON against a
// count done here; then the errors between the two sources of predictions.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/tools/cli_runner.h"
#include "data/image.h"
#include "data/label_map.h"
#include "engine/autograd.h"
#include "models/weight_import.h"
#include "weights/json.h"
#include "weights/load_weights.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;

constexpr int kCar = 13;  // trainId
constexpr int kWidth = 32, kHeight = 24, kImages = 2;  // at scale 0.25: 8 x 6, enough for stride 4

// Ground truth labelIds: car, road, sky, unlabeled (ignored).
uint8_t gt_label_id(int x, int y, int i) {
  const uint8_t ids[4] = {26, 7, 23, 0};
  return ids[(x / 3 + y + i) % 4];
}

class EvalModelCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("cbst_eval_model_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ASSERT_TRUE(fs::exists(cbst_)) << cbst_ << " is missing: build the `cbst` target first";
    checkpoint_ = dir_ / "small-fcn.safetensors";
    write_tree();
    write_checkpoint();
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write_tree() {
    const fs::path root = dir_ / "cs";
    fs::create_directories(root / "leftImg8bit/val/ulm");
    fs::create_directories(root / "gtFine/val/ulm");
    for (int i = 0; i < kImages; ++i) {
      const std::string stem = "ulm_000000_00000" + std::to_string(i);
      data::Image im = data::Image::blank(kWidth, kHeight, 3, 90);
      data::Labels gt = data::Labels::blank(kWidth, kHeight);
      for (int y = 0; y < kHeight; ++y)
        for (int x = 0; x < kWidth; ++x) {
          im.row(y)[x * 3] = uint8_t(7 * x + 5 * y);
          gt.ids[size_t(y) * kWidth + x] = gt_label_id(x, y, i);
        }
      data::write_png((root / ("leftImg8bit/val/ulm/" + stem + "_leftImg8bit.png")).string(), im);
      data::write_png_grey((root / ("gtFine/val/ulm/" + stem + "_gtFine_labelIds.png")).string(), gt);
    }
  }

  // small-fcn predicting car everywhere: classifier weights 0, bias 10 for car.
  void write_checkpoint() {
    auto model = create_model("small-fcn", {.num_classes = 19, .seed = 2});
    {
      NoGradGuard no_grad;
      for (auto& [name, t] : model->named_parameters()) {
        if (name == "classifier.weight") t.zero_();
        if (name == "classifier.bias") {
          std::vector<float> b(19, 0.0f);
          b[kCar] = 10.0f;
          t.copy_(Tensor::from_vector(b, {19}));
        }
      }
    }
    weights::save_checkpoint(checkpoint_.string(), model_checkpoint(*model, model->input_convention()));
  }

  // Runs `cbst ARGS`, returns the exit code; stdout+stderr go to `output_`.
  int run(const std::string& args) {
    const testing::CliResult r = testing::run_cbst(args, (dir_ / "log.txt").string());
    output_ = r.output;
    return r.exit_code;
  }

  std::string data_arg() const { return "--data cityscapes=" + (dir_ / "cs").string() + " --split val"; }
  std::string model_args() const { return "--model small-fcn --checkpoint " + checkpoint_.string(); }

  static nlohmann::json read_json(const fs::path& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return weights::parse_json(ss.str());
  }
  static double number(const nlohmann::json& object, const char* key) {
    const bool ok = object.contains(key) && object[key].is_number();
    EXPECT_TRUE(ok) << key;
    return ok ? object[key].get<double>() : -1.0;
  }

  // Car IoU of a constant car prediction: car GT pixels / valid pixels.
  static std::pair<double, int64_t> expected_car_iou() {
    int64_t car = 0, valid = 0;
    for (int i = 0; i < kImages; ++i)
      for (int y = 0; y < kHeight; ++y)
        for (int x = 0; x < kWidth; ++x) {
          const uint8_t id = gt_label_id(x, y, i);
          if (id != 0) ++valid;
          if (id == 26) ++car;
        }
    return {double(car) / double(valid), valid};
  }

  fs::path dir_;
  fs::path checkpoint_;
  fs::path cbst_ = fs::path(CBST_BINARY_DIR) / "tools" / "cbst";
  std::string output_;
};

TEST_F(EvalModelCommand, ScoresACheckpointWithScalesAndFlipAndWritesJsonAndPredictions) {
  const fs::path json = dir_ / "eval.json", preds = dir_ / "preds";
  ASSERT_EQ(run("eval " + data_arg() + " " + model_args() + " --scales 0.5,0.75,1.0 --flip --device cpu" +
                " --input-scale 0.5 --json " + json.string() + " --save-predictions " + preds.string()),
            0)
      << output_;
  EXPECT_NE(output_.find("car"), std::string::npos) << "the table is printed\n" << output_;

  const nlohmann::json r = read_json(json);
  const auto [car_iou, valid] = expected_car_iou();
  EXPECT_EQ(r.value("protocol", ""), "19");
  EXPECT_EQ(number(r, "images"), kImages);
  EXPECT_EQ(number(r, "valid_pixels"), double(valid));
  // The JSON holds doubles to the last bit; the metrics are ratios of pixel counts, and the
  // tolerance covers only a different order of summing the per-class terms of the mean.
  EXPECT_NEAR(number(r, "pixel_accuracy"), car_iou, 1e-12);
  EXPECT_NEAR(number(r, "miou"), car_iou / 19, 1e-12);
  ASSERT_TRUE(r.contains("classes") && r["classes"].is_array());
  const nlohmann::json& classes = r["classes"];
  ASSERT_EQ(classes.size(), 19u);
  EXPECT_EQ(classes[kCar].value("name", ""), "car");
  EXPECT_NEAR(number(classes[kCar], "iou"), car_iou, 1e-12);
  EXPECT_EQ(number(classes[0], "iou"), 0.0);

  // The saved labelIds score the same through --predictions.
  for (int i = 0; i < kImages; ++i) {
    EXPECT_TRUE(fs::exists(preds / "labelIds" / ("ulm_000000_00000" + std::to_string(i) + ".png")));
    EXPECT_TRUE(fs::exists(preds / "color" / ("ulm_000000_00000" + std::to_string(i) + "_color.png")));
  }
  const fs::path json2 = dir_ / "again.json";
  ASSERT_EQ(run("eval " + data_arg() + " --predictions " + (preds / "labelIds").string() + " --json " +
                json2.string()),
            0)
      << output_;
  EXPECT_EQ(number(read_json(json2), "miou"), number(r, "miou"));
}

// Exit 1 and one line "cbst: error: ..." on stderr.
void expect_one_line_error(int code, const std::string& output, const std::string& fragment) {
  EXPECT_EQ(code, 1) << output;
  EXPECT_EQ(output.rfind("cbst: error: ", 0), 0u) << output;
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
  EXPECT_NE(output.find(fragment), std::string::npos) << output;
}

TEST_F(EvalModelCommand, RefusesBothOrNeitherSourceOfPredictions) {
  fs::create_directories(dir_ / "preds");
  int code = run("eval " + data_arg() + " " + model_args() + " --predictions " + (dir_ / "preds").string());
  expect_one_line_error(code, output_, "either --predictions DIR or --checkpoint FILE, not both");
  code = run("eval " + data_arg());
  expect_one_line_error(code, output_, "or --checkpoint FILE");
  code = run("eval " + data_arg() + " --model small-fcn");
  expect_one_line_error(code, output_, "--checkpoint");
  // The checkpoint names its model: --model is optional, and scores the same.
  ASSERT_EQ(run("eval " + data_arg() + " --checkpoint " + checkpoint_.string()), 0) << output_;
  const std::string without = output_.substr(output_.find("mIoU19"));
  ASSERT_EQ(run("eval " + data_arg() + " " + model_args()), 0) << output_;
  EXPECT_EQ(output_.substr(output_.find("mIoU19")), without);
  code = run("eval " + data_arg() + " --predictions " + (dir_ / "preds").string() + " --flip");
  expect_one_line_error(code, output_, "--flip applies to --model");
  code = run("eval " + data_arg() + " " + model_args() + " --pred-format trainids");
  expect_one_line_error(code, output_, "--pred-format applies to --predictions");
  code = run("eval " + data_arg() + " --model resnet38 --checkpoint " + checkpoint_.string());
  expect_one_line_error(code, output_, "small-fcn");
}

}  // namespace
}  // namespace cbst
