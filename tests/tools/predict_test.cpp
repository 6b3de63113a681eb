// `cbst predict` end to end: a small-fcn checkpoint on a tiny Cityscapes tree and on a plain
// folder of images. The labels must equal what `cbst eval --save-predictions` writes for
// the same scales and flip (the evaluated path), the labelIds must be the trainIds mapped
// through the class table, the colours the palette, the overlay the blend; `eval
// --predictions` must score the labelIds as `eval --model` scores the model. Then the
// errors: clashing names, an empty folder, a wrong model name, a bad alpha.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/label_map.h"
#include "models/weight_import.h"
#include "tests/tools/cli_runner.h"
#include "tests/tools/tiny_cityscapes.h"
#include "weights/load_weights.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;
using testing::run_cbst;

constexpr int kWidth = 40, kHeight = 30, kImages = 2;

class PredictCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("cbst_predict_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ASSERT_TRUE(fs::exists(testing::cbst_binary())) << "build the `cbst` target first";
    stems_ = testing::write_tiny_cityscapes_val(dir_ / "cs", kWidth, kHeight, kImages);
    // A randomly initialised small-fcn: its labels vary over the image.
    auto model = create_model("small-fcn", {.num_classes = 19, .seed = 5});
    checkpoint_ = dir_ / "small-fcn.safetensors";
    weights::save_checkpoint(checkpoint_.string(), model_checkpoint(*model, model->input_convention()));
  }
  void TearDown() override { fs::remove_all(dir_); }

  int run(const std::string& args) {
    const testing::CliResult r = run_cbst(args, (dir_ / "log.txt").string());
    output_ = r.output;
    return r.exit_code;
  }
  std::string cs() const { return "--data cityscapes=" + (dir_ / "cs").string() + " --split val"; }
  static std::string miou_line(const std::string& out) {
    const size_t at = out.find("mIoU19");
    return at == std::string::npos ? "" : out.substr(at, out.find('\n', at) - at);
  }

  fs::path dir_, checkpoint_;
  std::vector<std::string> stems_;
  std::string output_;
};

TEST_F(PredictCommand, WritesWhatEvalPredictsInFourForms) {
  const fs::path out = dir_ / "pred", saved = dir_ / "saved";
  // No --model: the checkpoint records it.
  ASSERT_EQ(run("predict " + cs() + " --checkpoint " + checkpoint_.string() + " --scales 0.75,1 --flip --out " +
                out.string()),
            0)
      << output_;
  EXPECT_NE(output_.find("2 images predicted"), std::string::npos) << output_;
  ASSERT_EQ(run("eval " + cs() + " --model small-fcn --checkpoint " + checkpoint_.string() +
                " --scales 0.75,1 --flip --save-train-ids --save-predictions " + saved.string()),
            0)
      << output_;
  const std::string model_miou = miou_line(output_);
  ASSERT_FALSE(model_miou.empty()) << output_;

  const auto& table = data::class_table(data::ClassSpace::cityscapes19);
  std::vector<bool> seen(19, false);
  for (size_t i = 0; i < stems_.size(); ++i) {
    const std::string& stem = stems_[i];
    const data::RawLabels ids = data::read_label_values((out / "trainIds" / (stem + ".png")).string());
    const data::RawLabels expected = data::read_label_values((saved / "trainIds" / (stem + ".png")).string());
    ASSERT_EQ(ids.width, kWidth);
    ASSERT_EQ(ids.height, kHeight);
    EXPECT_EQ(ids.values, expected.values) << stem << ": predict and eval disagree";
    const data::RawLabels label_ids = data::read_label_values((out / "labelIds" / (stem + ".png")).string());
    const data::Image colour = data::read_image_rgb((out / "color" / (stem + "_color.png")).string());
    const data::Image overlay = data::read_image_rgb((out / "overlay" / (stem + "_overlay.png")).string());
    const data::Image image = data::read_image_rgb(
        (dir_ / "cs/leftImg8bit/val/ulm" / (stem + "_leftImg8bit.png")).string());
    for (size_t p = 0; p < ids.values.size(); ++p) {
      const int t = int(ids.values[p]);
      ASSERT_LT(t, 19);
      seen[size_t(t)] = true;
      EXPECT_EQ(int(label_ids.values[p]), table[size_t(t)].label_id);
      for (int c = 0; c < 3; ++c) {
        EXPECT_EQ(colour.pixels[p * 3 + c], table[size_t(t)].color[size_t(c)]);
        EXPECT_EQ(overlay.pixels[p * 3 + c],
                  uint8_t(std::lround(0.5 * image.pixels[p * 3 + c] + 0.5 * table[size_t(t)].color[size_t(c)])));
      }
    }
  }
  EXPECT_GE(std::count(seen.begin(), seen.end(), true), 2) << "a constant prediction would test little";

  // The labelIds folder scores as the model does; so does the whole folder, whose labelIds/
  // or trainIds/ are read by --pred-format.
  ASSERT_EQ(run("eval " + cs() + " --predictions " + (out / "labelIds").string()), 0) << output_;
  EXPECT_EQ(miou_line(output_), model_miou);
  ASSERT_EQ(run("eval " + cs() + " --predictions " + out.string()), 0) << output_;
  EXPECT_EQ(miou_line(output_), model_miou);
  ASSERT_EQ(run("eval " + cs() + " --predictions " + out.string() + " --pred-format trainids"), 0) << output_;
  EXPECT_NE(output_.find("trainIds"), std::string::npos) << output_;
  EXPECT_EQ(miou_line(output_), model_miou);
  ASSERT_EQ(run("eval " + cs() + " --predictions " + saved.string() + " --pred-format trainids"), 0) << output_;
  EXPECT_EQ(miou_line(output_), model_miou);
}

TEST_F(PredictCommand, PredictsAFolderOfImagesAndRefusesWhatItCannotName) {
  const fs::path photos = dir_ / "photos", out = dir_ / "out";
  fs::create_directories(photos / "day");
  fs::copy_file(dir_ / "cs/leftImg8bit/val/ulm" / (stems_[0] + "_leftImg8bit.png"), photos / "a.png");
  fs::copy_file(dir_ / "cs/leftImg8bit/val/ulm" / (stems_[1] + "_leftImg8bit.png"), photos / "day" / "b.png");
  ASSERT_EQ(run("predict --data images=" + photos.string() + " --checkpoint " + checkpoint_.string() +
                " --no-color --no-overlay --overlay-alpha 1 --out " + out.string()),
            0)
      << output_;
  for (const char* f : {"labelIds/a.png", "labelIds/b.png", "trainIds/a.png", "trainIds/b.png"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  EXPECT_FALSE(fs::exists(out / "color"));
  EXPECT_FALSE(fs::exists(out / "overlay"));

  // Two images named alike would write one file: refused, naming both.
  fs::copy_file(photos / "a.png", photos / "day" / "a.png");
  const fs::path out2 = dir_ / "out2";
  EXPECT_EQ(run("predict --data images=" + photos.string() + " --checkpoint " + checkpoint_.string() + " --out " +
                out2.string()),
            1);
  EXPECT_NE(output_.find("cbst: error: images: '"), std::string::npos) << output_;
  EXPECT_NE(output_.find("have the same name 'a'"), std::string::npos) << output_;
  EXPECT_FALSE(fs::exists(out2));

  fs::create_directories(dir_ / "empty");
  EXPECT_EQ(run("predict --data images=" + (dir_ / "empty").string() + " --checkpoint " + checkpoint_.string() +
                " --out " + out2.string()),
            1);
  EXPECT_NE(output_.find("cbst: error: images: no .png or .jpg files under"), std::string::npos) << output_;

  // The wrong model name, and an alpha outside [0, 1]: nothing is written.
  fs::remove(photos / "day" / "a.png");
  EXPECT_EQ(run("predict --data images=" + photos.string() + " --model resnet38 --checkpoint " +
                checkpoint_.string() + " --out " + out2.string()),
            1);
  EXPECT_NE(output_.find("cbst: error:"), std::string::npos) << output_;
  EXPECT_NE(output_.find("small-fcn"), std::string::npos) << output_;
  EXPECT_EQ(run("predict --data images=" + photos.string() + " --checkpoint " + checkpoint_.string() +
                " --overlay-alpha 2 --out " + out2.string()),
            1);
  EXPECT_NE(output_.find("cbst: error: --overlay-alpha 2 is outside [0, 1]"), std::string::npos) << output_;
  EXPECT_FALSE(fs::exists(out2));
}

}  // namespace
}  // namespace cbst
