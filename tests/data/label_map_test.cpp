// Label tables: every map against the published tables, unknown values, protocols, palette.
#include <gtest/gtest.h>

#include "data/label_map.h"
#include "engine/check.h"

using namespace cbst::data;

TEST(LabelMap, CityscapesLabelIdsMapToTrainIds) {
  const LabelMap m(LabelEncoding::cityscapes_ids, ClassSpace::cityscapes19);
  const int ids[19] = {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33};
  for (int t = 0; t < 19; ++t) EXPECT_EQ(m(ids[t]), t) << "labelId " << ids[t];
  for (int v : {0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30}) {
    EXPECT_EQ(m(v), 255) << v;
    EXPECT_TRUE(m.known(v)) << v;  // defined by Cityscapes, ignored in evaluation
  }
  EXPECT_FALSE(m.known(34));
  EXPECT_TRUE(m.known(255));
}

TEST(LabelMap, SynthiaIdsMapToCbstSixteenClasses) {
  // CBST's labels_synthia.py: raw id -> 16-class trainId.
  const int expected[23] = {255, 9, 2, 0, 1, 4, 8, 5, 12, 7, 10, 15, 14, 255, 255, 6, 255, 11, 255, 13, 255, 3, 255};
  const LabelMap m(LabelEncoding::synthia_ids, ClassSpace::synthia16);
  for (int raw = 0; raw < 23; ++raw) EXPECT_EQ(m(raw), expected[raw]) << "SYNTHIA id " << raw;
  EXPECT_FALSE(m.known(23));
}

TEST(LabelMap, SynthiaIdsMapToNineteenTrainIdsLikeDaformer) {
  const std::pair<int, int> pairs[] = {{3, 0}, {4, 1}, {2, 2}, {21, 3}, {5, 4}, {7, 5}, {15, 6}, {9, 7}, {6, 8},
                                       {16, 9}, {1, 10}, {10, 11}, {17, 12}, {8, 13}, {18, 14}, {19, 15},
                                       {20, 16}, {12, 17}, {11, 18}};
  const LabelMap m(LabelEncoding::synthia_ids, ClassSpace::cityscapes19);
  for (auto [raw, t] : pairs) EXPECT_EQ(m(raw), t) << raw;
  for (int raw : {0, 13, 14, 22}) EXPECT_EQ(m(raw), 255) << raw;
}

TEST(LabelMap, CityscapesSixteenDropsTerrainTruckTrain) {
  const LabelMap m(LabelEncoding::cityscapes_ids, ClassSpace::synthia16);
  const int ids[16] = {7, 8, 11, 12, 13, 17, 19, 20, 21, 23, 24, 25, 26, 28, 32, 33};
  for (int t = 0; t < 16; ++t) EXPECT_EQ(m(ids[t]), t);
  for (int v : {22, 27, 31}) EXPECT_EQ(m(v), 255);
  const LabelMap t19(LabelEncoding::train_ids19, ClassSpace::synthia16);
  EXPECT_EQ(t19(9), 255);
  EXPECT_EQ(t19(10), 9);
  EXPECT_EQ(t19(18), 15);
}

TEST(LabelMap, NthuGroundTruthKeepsThirteenClassesAndPredictionsMerge) {
  const LabelMap gt(LabelEncoding::cityscapes_ids, ClassSpace::nthu13, LabelRole::ground_truth);
  const std::pair<int, int> gt_pairs[] = {{7, 0}, {8, 1}, {11, 2}, {19, 3}, {20, 4}, {21, 5}, {23, 6},
                                          {24, 7}, {25, 8}, {26, 9}, {28, 10}, {32, 11}, {33, 12}};
  for (auto [id, c] : gt_pairs) EXPECT_EQ(gt(id), c) << id;
  for (int id : {12, 13, 17, 22, 27, 31}) EXPECT_EQ(gt(id), 255) << id;
  const LabelMap pred(LabelEncoding::train_ids19, ClassSpace::nthu13, LabelRole::prediction);
  EXPECT_EQ(pred(3), 2);   // wall -> building
  EXPECT_EQ(pred(4), 2);   // fence -> building
  EXPECT_EQ(pred(5), 2);   // pole -> building
  EXPECT_EQ(pred(14), 9);  // truck -> car
  EXPECT_EQ(pred(9), 5);   // terrain -> vegetation
  EXPECT_EQ(pred(16), 255);
  EXPECT_EQ(pred(18), 12);
}

TEST(LabelMap, UnknownValuesBecomeIgnoreAndAreCountedPerFile) {
  const LabelMap m(LabelEncoding::cityscapes_ids, ClassSpace::cityscapes19);
  const RawLabels raw{3, 2, {7, 40, 26, 300, 0, 255}};
  LabelMap::Stats st;
  const Labels l = m.apply(raw, &st);
  EXPECT_EQ(st.unknown, 2);
  EXPECT_EQ(st.first_unknown, 40u);
  EXPECT_EQ(l.ids, (std::vector<uint8_t>{0, 255, 13, 255, 255, 255}));
  std::vector<std::string> warnings;
  set_warning_handler([&](const std::string& w) { warnings.push_back(w); });
  m.apply_and_warn(raw, "labels/00001.png");
  m.apply_and_warn(RawLabels{1, 1, {7}}, "labels/00002.png");
  set_warning_handler(nullptr);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("labels/00001.png: 2 pixel(s)"), std::string::npos) << warnings[0];
}

TEST(Protocol, ThirteenIsSixteenWithoutWallFencePole) {
  const Protocol p = protocol_from_name("13");
  EXPECT_EQ(p.space, ClassSpace::synthia16);
  ASSERT_EQ(p.classes.size(), 13u);
  for (int c : p.classes) {
    const std::string& name = class_table(p.space)[c].name;
    EXPECT_TRUE(name != "wall" && name != "fence" && name != "pole") << name;
  }
  EXPECT_EQ(protocol_from_name("19").classes.size(), 19u);
  EXPECT_EQ(protocol_from_name("16").classes.size(), 16u);
  EXPECT_EQ(protocol_from_name("nthu").classes.size(), 13u);
  EXPECT_THROW(protocol_from_name("20"), cbst::Error);
}

TEST(Palette, ColorizeUsesTheCityscapesPalette) {
  const Labels l{3, 1, {0, 13, 255}};
  const Image c = colorize(l, ClassSpace::cityscapes19);
  EXPECT_EQ(std::vector<uint8_t>(c.pixels.begin(), c.pixels.end()),
            (std::vector<uint8_t>{128, 64, 128, 0, 0, 142, 0, 0, 0}));
  const Image c16 = colorize(Labels{1, 1, {9}}, ClassSpace::synthia16);  // sky in the 16 space
  EXPECT_EQ(c16.pixels, (std::vector<uint8_t>{70, 130, 180}));
}
