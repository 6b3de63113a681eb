// The authors' shipped outputs (shared/realdata, read in place): palette PNGs yield the
// indices of the grey PNGs, trainIds map to labelIds, and the correct_mask files reproduce
// the pixel accuracies printed in the logs through our confusion matrix.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "data/evaluation.h"
#include "data/image.h"
#include "data/label_map.h"
#include "tests/data/data_test_util.h"

using namespace cbst::data;
namespace tu = cbst::data::test_util;

namespace {

struct RealSet {
  std::string folder;  // under realdata/
  std::vector<std::string> files;
  std::string log;
};

std::string realdata() { return std::string(CBST_SHARED_DIR) + "/realdata"; }

RealSet cityscapes_set() {
  RealSet s{"cityscapes_val", {}, "cityscapes_val_gta_rna-a1_cls19_s8_ep-0000.log"};
  for (const char* id : {"000294", "000576", "001016", "001236", "001751"})
    s.files.push_back(std::string("frankfurt_000000_") + id + "_leftImg8bit.png");
  return s;
}

RealSet gta5_set() {
  RealSet s{"gta5_sample", {}, "gta5_train_gta_rna-a1_cls19_s8_ep-0000_train.log"};
  for (int i = 1; i <= 20; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "%05d.png", i);
    s.files.push_back(name);
  }
  return s;
}

std::vector<double> logged_pixel_accuracies(const std::string& path) {
  std::ifstream in(path);
  std::vector<double> out;
  const std::regex re("pixel acc: ([0-9.]+)%");
  std::string line;
  std::smatch m;
  while (std::getline(in, line))
    if (std::regex_search(line, m, re)) out.push_back(std::stod(m[1]));
  return out;
}

void check_palette_equals_grey(const RealSet& set) {
  const std::string base = realdata() + "/" + set.folder;
  if (!tu::file_exists(base + "/pred_color/" + set.files[0])) GTEST_SKIP() << "realdata absent: " << base;
  const int to_label_id[19] = {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33};
  for (const std::string& f : set.files) {
    EXPECT_EQ(read_png_header(base + "/pred_color/" + f).color_type, 3) << f;  // a palette PNG
    const RawLabels color = read_label_values(base + "/pred_color/" + f);
    const RawLabels grey = read_label_values(base + "/pred_labelIds/" + f);
    const RawLabels train = read_label_values(base + "/pred_trainIds/" + f);
    ASSERT_EQ(color.width, grey.width);
    ASSERT_EQ(color.height, grey.height);
    ASSERT_EQ(color.values, grey.values) << f;
    for (size_t i = 0; i < train.values.size(); ++i) {
      ASSERT_LT(train.values[i], 19) << f;
      ASSERT_EQ(grey.values[i], to_label_id[train.values[i]]) << f << " pixel " << i;
    }
  }
}

// GT consistent with correct_mask: equal to the prediction where 127, ignore where 255, and
// some other class where 0. Pixel accuracy depends only on that split.
void check_logged_pixel_accuracy(const RealSet& set) {
  const std::string base = realdata() + "/" + set.folder;
  if (!tu::file_exists(base + "/correct_mask/" + set.files[0])) GTEST_SKIP() << "realdata absent: " << base;
  const std::vector<double> logged = logged_pixel_accuracies(realdata() + "/logs/" + set.log);
  ASSERT_EQ(logged.size(), set.files.size());
  const LabelMap as_train(LabelEncoding::train_ids19, ClassSpace::cityscapes19, LabelRole::prediction);
  ConfusionMatrix cm(19);
  for (size_t k = 0; k < set.files.size(); ++k) {
    const Labels pred = as_train.apply(read_label_values(base + "/pred_trainIds/" + set.files[k]));
    const RawLabels mask = read_label_values(base + "/correct_mask/" + set.files[k]);
    Labels gt = Labels::blank(pred.width, pred.height);
    for (size_t i = 0; i < gt.ids.size(); ++i) {
      const uint16_t m = mask.values[i];
      ASSERT_TRUE(m == 0 || m == 127 || m == 255) << set.files[k] << " holds mask value " << m;
      gt.ids[i] = m == 255 ? kIgnoreLabel : m == 127 ? pred.ids[i] : uint8_t((pred.ids[i] + 1) % 19);
    }
    cm.add(gt, pred);
    const EvalResult r = compute_metrics(cm, protocol_from_name("19"), int64_t(k + 1));
    // The log prints the running value rounded to 2 decimals of a percentage.
    EXPECT_NEAR(100 * r.pixel_accuracy, logged[k], 0.005 + 1e-9) << "after " << set.files[k];
  }
}

}  // namespace

TEST(RealData, CityscapesPalettePredictionsYieldTheGreyIndices) { check_palette_equals_grey(cityscapes_set()); }
TEST(RealData, Gta5PalettePredictionsYieldTheGreyIndices) { check_palette_equals_grey(gta5_set()); }
TEST(RealData, CityscapesCorrectMasksReproduceTheLoggedPixelAccuracy) {
  check_logged_pixel_accuracy(cityscapes_set());
}
TEST(RealData, Gta5CorrectMasksReproduceTheLoggedPixelAccuracy) { check_logged_pixel_accuracy(gta5_set()); }
