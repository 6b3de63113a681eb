// Evaluation: confusion matrix against brute force, metric definitions, the golden mmseg
// fixture, and prediction-folder matching.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "tests/support/expect_close.h"
#include "data/dataset.h"
#include "data/evaluation.h"
#include "data/predictions.h"
#include "engine/check.h"
#include "tests/data/data_test_util.h"

using namespace cbst::data;
namespace tu = cbst::data::test_util;
using tu::TempDir;

namespace {

using cbst::testing::error_of;

}  // namespace

TEST(ConfusionMatrix, MatchesABruteForceCount) {
  std::mt19937 rng(3);
  const int C = 19;
  const int n = 5000;
  std::vector<uint8_t> gt(n), pred(n);
  for (int i = 0; i < n; ++i) {
    const int g = int(rng() % 23), p = int(rng() % 22);  // some values beyond C on both sides
    gt[i] = uint8_t(g >= 21 ? 255 : g);
    pred[i] = uint8_t(p >= 20 ? 255 : p);
  }
  ConfusionMatrix cm(C);
  cm.add(gt.data(), pred.data(), n / 2);
  cm.add(gt.data() + n / 2, pred.data() + n / 2, n - n / 2);
  for (int g = 0; g < C; ++g) {
    for (int p = 0; p <= C; ++p) {
      int64_t expected = 0;
      for (int i = 0; i < n; ++i)
        expected += gt[i] == g && (p < C ? pred[i] == p : pred[i] >= C);
      ASSERT_EQ(cm.at(g, p), expected) << "gt " << g << " pred " << p;
    }
  }
  // IoU = TP / (TP + FP + FN), with FP counted on valid ground truth only.
  const EvalResult r = compute_metrics(cm, protocol_from_name("19"));
  for (int c = 0; c < C; ++c) {
    int64_t tp = 0, fp = 0, fn = 0;
    for (int i = 0; i < n; ++i) {
      if (gt[i] >= C) continue;
      tp += gt[i] == c && pred[i] == c;
      fp += gt[i] != c && pred[i] == c;
      fn += gt[i] == c && pred[i] != c;
    }
    EXPECT_NEAR(r.classes[c].iou, double(tp) / double(tp + fp + fn), 1e-12);
  }
  // The tensor path (CPU) gives the same counts.
  ConfusionMatrix ct(C);
  ct.add(cbst::Tensor::from_vector<uint8_t>(gt, {50, 100}), cbst::Tensor::from_vector<uint8_t>(pred, {50, 100}));
  EXPECT_EQ(ct.counts(), cm.counts());
}

TEST(EvalMetrics, AbsentClassCountsAsZeroAndIsFlagged) {
  ConfusionMatrix cm(19);
  const std::vector<uint8_t> gt = {0, 0, 1, 1, 255, 2};
  const std::vector<uint8_t> pred = {0, 1, 1, 1, 5, 255};
  cm.add(gt.data(), pred.data(), int64_t(gt.size()));
  const EvalResult r = compute_metrics(cm, protocol_from_name("19"), 1);
  EXPECT_EQ(r.valid_pixels, 5);
  EXPECT_NEAR(r.classes[0].iou, 1.0 / 2.0, 1e-12);  // TP 1, FN 1
  EXPECT_NEAR(r.classes[1].iou, 2.0 / 3.0, 1e-12);  // TP 2, FP 1
  EXPECT_NEAR(r.classes[2].iou, 0.0, 1e-12);        // predicted "no class"
  EXPECT_FALSE(r.classes[2].absent);
  EXPECT_TRUE(r.classes[5].absent);  // the prediction on ignore did not count as FP
  EXPECT_EQ(r.classes[5].predicted_pixels, 0);
  EXPECT_NEAR(r.miou, (0.5 + 2.0 / 3.0) / 19.0, 1e-12);
  EXPECT_NEAR(r.pixel_accuracy, 3.0 / 5.0, 1e-12);
  EXPECT_NEAR(r.mean_accuracy, (0.5 + 1.0) / 19.0, 1e-12);
  const std::string table = format_table(r);
  EXPECT_NE(table.find("| road           |  50.00 |  50.00 |"), std::string::npos) << table;
  EXPECT_NE(table.find("absent from the ground truth"), std::string::npos);
  // The text reads back to the same doubles (the writer once rounded them to 6 decimals).
  const nlohmann::json json = nlohmann::json::parse(cbst::json_text(to_json(r), 2));
  EXPECT_EQ(json["classes"][6]["name"], "traffic light");
  EXPECT_EQ(json["classes"][5]["absent"], true);
  EXPECT_EQ(json["classes"][1]["iou"].get<double>(), r.classes[1].iou);
  EXPECT_EQ(json["miou"].get<double>(), r.miou);
}

TEST(EvalMetrics, ThirteenClassProtocolAveragesTheSixteenClassMatrix) {
  ConfusionMatrix cm(16);
  const std::vector<uint8_t> gt = {3, 0, 0};    // wall, road, road
  const std::vector<uint8_t> pred = {0, 0, 3};  // road, road, wall
  cm.add(gt.data(), pred.data(), 3);
  const EvalResult r13 = compute_metrics(cm, protocol_from_name("13"));
  ASSERT_EQ(r13.classes.size(), 13u);
  EXPECT_EQ(r13.classes[0].name, "road");
  EXPECT_NEAR(r13.classes[0].iou, 1.0 / 3.0, 1e-12);  // the wall pixel is still road's FP
}

TEST(EvalGolden, MmsegPseudoCityscapesGivesTheProvenanceIoUs) {
  const std::string root = std::string(CBST_SHARED_DIR) + "/fixtures/mmseg_pseudo_cityscapes";
  const std::string gt_path = root + "/gtFine/val/frankfurt/frankfurt_000000_000294_gtFine_labelIds.png";
  if (!tu::file_exists(gt_path)) GTEST_SKIP() << "shared fixtures absent: " << root;
  const Dataset ds = open_cityscapes(root, {.split = "val"});
  ASSERT_EQ(ds.size(), 1u);
  const LoadedSample s = ds.load(0, ds.label_map(ClassSpace::cityscapes19));
  EXPECT_EQ(s.image.width, 256);
  EXPECT_EQ(s.image.height, 128);
  const LabelMap as_train_ids(LabelEncoding::train_ids19, ClassSpace::cityscapes19, LabelRole::prediction);
  const Labels pred = as_train_ids.apply(
      read_label_values(root + "/gtFine/val/frankfurt/frankfurt_000000_000294_gtFine_labelTrainIds.png"));
  ConfusionMatrix cm(19);
  cm.add(s.labels, pred);
  EXPECT_EQ(cm.valid_pixels(), 28894);
  int64_t no_class = 0;
  for (int g = 0; g < 19; ++g) no_class += cm.at(g, 19);
  EXPECT_EQ(no_class, 10);
  const EvalResult r = compute_metrics(cm, protocol_from_name("19"), 1);
  const std::map<std::string, double> golden = {
      {"road", 99.79},       {"sidewalk", 99.17}, {"building", 99.78}, {"fence", 97.73}, {"pole", 98.01},
      {"traffic sign", 97.91}, {"vegetation", 99.25}, {"sky", 97.61}, {"person", 97.22}, {"car", 99.50}};
  double sum = 0;
  int absent = 0;
  for (const ClassScore& c : r.classes) {
    const auto it = golden.find(c.name);
    if (it == golden.end()) {
      EXPECT_TRUE(c.absent) << c.name;
      EXPECT_EQ(c.iou, 0.0);
      ++absent;
      continue;
    }
    // The provenance rounds to 2 decimals of a percentage.
    EXPECT_NEAR(100 * c.iou, it->second, 0.005 + 1e-9) << c.name;
    sum += 100 * c.iou;
  }
  EXPECT_EQ(absent, 9);
  EXPECT_NEAR(sum / 10, 98.60, 0.005);
  EXPECT_NEAR(100 * r.miou, sum / 19, 1e-9);
}

TEST(PredictionIndex, MatchesStemsLikeCityscapesScripts) {
  TempDir d;
  for (const std::string f : {"a/frankfurt_000000_000294_leftImg8bit.png", "b/c/00001.png", "00001_x.jpg",
                              "000010.png", "dup_1.png", "x/dup_1.png"})
    tu::write_text(d.file("p/" + f), "");
  const PredictionIndex idx(d.path() + "/p");
  EXPECT_EQ(idx.find("frankfurt_000000_000294"), d.path() + "/p/a/frankfurt_000000_000294_leftImg8bit.png");
  EXPECT_EQ(idx.find("00001"), d.path() + "/p/b/c/00001.png");
  EXPECT_EQ(idx.find("0000"), "");
  EXPECT_NE(error_of([&] { idx.find("dup_1"); }).find("several predictions"), std::string::npos);
}

TEST(EvaluatePredictions, ScoresAFolderOfLabelIdPngs) {
  TempDir d;
  const int w = 8, h = 4;
  std::vector<uint8_t> gt(w * h, 7), pred(w * h, 7);  // road everywhere
  for (int i = 0; i < 8; ++i) gt[i] = 26;              // 8 car pixels
  for (int i = 0; i < 4; ++i) pred[i] = 26;            // 4 of them found
  for (const std::string stem : {"ulm_000000_000001", "ulm_000000_000002"}) {
    write_png(d.file("cs/leftImg8bit/val/ulm/" + stem + "_leftImg8bit.png"), tu::pattern_image(w, h));
    tu::write_grey_png(d.file("cs/gtFine/val/ulm/" + stem + "_gtFine_labelIds.png"), w, h, gt);
    tu::write_grey_png(d.file("preds/" + stem + "_leftImg8bit.png"), w, h, pred);
  }
  const Dataset ds = open_cityscapes(d.path() + "/cs", {.split = "val"});
  const EvalResult r = evaluate_predictions(ds, PredictionIndex(d.path() + "/preds"),
                                            {.prediction_encoding = LabelEncoding::cityscapes_ids,
                                             .protocol = protocol_from_name("19")});
  EXPECT_EQ(r.images, 2);
  EXPECT_NEAR(r.classes[13].iou, 0.5, 1e-12);         // car: TP 8, FN 8
  EXPECT_NEAR(r.classes[0].iou, 48.0 / 56.0, 1e-12);  // road: TP 48, FP 8
  // Missing prediction: the error says which and how files are matched.
  std::filesystem::remove(d.path() + "/preds/ulm_000000_000002_leftImg8bit.png");
  const std::string msg = error_of([&] { evaluate_predictions(ds, PredictionIndex(d.path() + "/preds"), {}); });
  EXPECT_NE(msg.find("ulm_000000_000002"), std::string::npos) << msg;
  // Wrong size: both files named.
  tu::write_grey_png(d.path() + "/preds/ulm_000000_000002_leftImg8bit.png", w + 2, h, std::vector<uint8_t>((w + 2) * h, 7));
  const std::string msg2 = error_of([&] { evaluate_predictions(ds, PredictionIndex(d.path() + "/preds"), {}); });
  EXPECT_NE(msg2.find("preds/ulm_000000_000002_leftImg8bit.png"), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("ulm_000000_000002_gtFine_labelIds.png"), std::string::npos) << msg2;
}
