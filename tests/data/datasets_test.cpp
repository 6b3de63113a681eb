// Dataset readers on small trees written in each dataset's real layout.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/support/expect_close.h"
#include "data/dataset.h"
#include "engine/check.h"
#include "tests/data/data_test_util.h"

using namespace cbst::data;
namespace tu = cbst::data::test_util;
using tu::TempDir;

namespace {

constexpr int kW = 12, kH = 6;

// Label ids cycling through a given set of stored values.
std::vector<uint8_t> cycle(const std::vector<uint8_t>& values, int n) {
  std::vector<uint8_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = values[i % values.size()];
  return v;
}

using cbst::testing::error_of;

void write_gta5(const TempDir& d, int n) {
  for (int i = 1; i <= n; ++i) {
    char stem[16];
    std::snprintf(stem, sizeof stem, "%05d", i);
    write_png(d.file(std::string("gta/images/") + stem + ".png"), tu::pattern_image(kW, kH, i));
    tu::write_palette_png(d.file(std::string("gta/labels/") + stem + ".png"), kW, kH,
                          cycle({7, 8, 26, 0, uint8_t(i)}, kW * kH));
  }
}

}  // namespace

TEST(Gta5Reader, PaletteLabelsYieldTrainIds) {
  TempDir d;
  write_gta5(d, 3);
  const Dataset ds = open_dataset("gta5=" + d.path() + "/gta");
  ASSERT_EQ(ds.size(), 3u);
  EXPECT_EQ(ds.sample(0).stem, "00001");
  EXPECT_EQ(ds.label_encoding(), LabelEncoding::cityscapes_ids);
  const LoadedSample s = ds.load(1, ds.label_map(ClassSpace::cityscapes19));
  EXPECT_EQ(s.image.width, kW);
  EXPECT_EQ(s.image.pixels, tu::pattern_image(kW, kH, 2).pixels);
  // stored 7, 8, 26, 0, 2 -> road, sidewalk, car, ignore, ignore
  EXPECT_EQ(std::vector<uint8_t>(s.labels.ids.begin(), s.labels.ids.begin() + 5),
            (std::vector<uint8_t>{0, 1, 13, 255, 255}));
}

TEST(Gta5Reader, SkipsImagesWithoutLabelsWithOneWarning) {
  TempDir d;
  write_gta5(d, 3);
  std::filesystem::remove(d.path() + "/gta/labels/00002.png");
  std::vector<std::string> warnings;
  set_warning_handler([&](const std::string& w) { warnings.push_back(w); });
  const Dataset ds = open_gta5(d.path() + "/gta");
  set_warning_handler(nullptr);
  EXPECT_EQ(ds.size(), 2u);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("00002"), std::string::npos);
}

TEST(Gta5Reader, ListFileSelectsAndOrdersSamples) {
  TempDir d;
  write_gta5(d, 3);
  tu::write_text(d.file("gta/train.lst"), "images/00003.png\tlabels/00003.png\n# comment\nimages/00001.png\n");
  const Dataset ds = open_gta5(d.path() + "/gta", {.split = "train", .list_file = d.path() + "/gta/train.lst"});
  ASSERT_EQ(ds.size(), 2u);
  EXPECT_EQ(ds.sample(0).stem, "00003");
  EXPECT_EQ(ds.sample(1).label, d.path() + "/gta/labels/00001.png");
}

TEST(SynthiaReader, SixteenBitLabelsUseChannelZero) {
  TempDir d;
  write_png(d.file("syn/RGB/0000000.png"), tu::pattern_image(kW, kH));
  PngWriteSpec spec{.width = kW, .height = kH, .channels = 3, .bit_depth = 16};
  const uint16_t ids[] = {3, 4, 8, 0, 22, 10};
  for (int i = 0; i < kW * kH; ++i) {
    spec.samples16.push_back(ids[i % 6]);
    spec.samples16.push_back(uint16_t(1000 + i));  // instance id in channel 1
    spec.samples16.push_back(0);
  }
  write_png(d.file("syn/GT/LABELS/0000000.png"), spec);
  const Dataset ds = open_dataset("synthia=" + d.path() + "/syn");
  ASSERT_EQ(ds.size(), 1u);
  const LoadedSample s = ds.load(0, ds.label_map(ClassSpace::synthia16));
  // road 0, sidewalk 1, car 12, void 255, lanemarking 255, pedestrian 10
  EXPECT_EQ(std::vector<uint8_t>(s.labels.ids.begin(), s.labels.ids.begin() + 6),
            (std::vector<uint8_t>{0, 1, 12, 255, 255, 10}));
}

TEST(CityscapesReader, FindsCitiesAndPairsGtFine) {
  TempDir d;
  for (const std::string stem : {"aachen_000000_000019", "bochum_000000_000313", "bochum_000000_001097"}) {
    const std::string city = stem.substr(0, stem.find('_'));
    write_png(d.file("cs/leftImg8bit/val/" + city + "/" + stem + "_leftImg8bit.png"), tu::pattern_image(kW, kH));
    tu::write_grey_png(d.file("cs/gtFine/val/" + city + "/" + stem + "_gtFine_labelIds.png"), kW, kH,
                       cycle({7, 33, 1}, kW * kH));
  }
  const Dataset ds = open_dataset("cityscapes=" + d.path() + "/cs", {.split = "val"});
  ASSERT_EQ(ds.size(), 3u);
  EXPECT_EQ(ds.sample(0).stem, "aachen_000000_000019");
  EXPECT_EQ(ds.sample(2).stem, "bochum_000000_001097");
  EXPECT_TRUE(ds.all_labelled());
  const LoadedSample s = ds.load(2, ds.label_map(ClassSpace::cityscapes19));
  EXPECT_EQ(std::vector<uint8_t>(s.labels.ids.begin(), s.labels.ids.begin() + 3), (std::vector<uint8_t>{0, 18, 255}));
  // A split without gtFine is unlabelled (a self-training target), not an error.
  write_png(d.file("cs/leftImg8bit/train_extra/aachen/aachen_000001_000019_leftImg8bit.png"), tu::pattern_image(kW, kH));
  const Dataset extra = open_cityscapes(d.path() + "/cs", {.split = "train_extra"});
  EXPECT_EQ(extra.size(), 1u);
  EXPECT_FALSE(extra.all_labelled());
}

TEST(NthuReader, ReadsTrainImagesAndTestLabels) {
  TempDir d;
  tu::write_jpeg(d.file("NTHU/Rome/Images/Train/a.jpg"), tu::pattern_image(kW, kH));
  tu::write_jpeg(d.file("NTHU/Rome/Images/Train/b.jpg"), tu::pattern_image(kW, kH));
  tu::write_jpeg(d.file("NTHU/Rome/Images/Test/t1.jpg"), tu::pattern_image(kW, kH));
  tu::write_grey_png(d.file("NTHU/Rome/Labels/Test/t1_eval.png"), kW, kH, cycle({7, 12, 28}, kW * kH));
  const Dataset train = open_dataset("nthu:rome=" + d.path() + "/NTHU", {.split = "train"});
  EXPECT_EQ(train.size(), 2u);
  EXPECT_FALSE(train.all_labelled());
  const Dataset test = open_dataset("nthu:rome=" + d.path() + "/NTHU", {.split = "test"});
  ASSERT_EQ(test.size(), 1u);
  const LoadedSample s = test.load(0, test.label_map(ClassSpace::nthu13));
  EXPECT_EQ(s.image.width, kW);
  EXPECT_EQ(std::vector<uint8_t>(s.labels.ids.begin(), s.labels.ids.begin() + 3), (std::vector<uint8_t>{0, 255, 10}));
}

TEST(BddReader, ReadsTrainIdLabels) {
  TempDir d;
  tu::write_jpeg(d.file("bdd/seg/images/val/x1.jpg"), tu::pattern_image(kW, kH));
  tu::write_grey_png(d.file("bdd/seg/labels/val/x1_train_id.png"), kW, kH, cycle({0, 18, 255}, kW * kH));
  const Dataset ds = open_dataset("bdd=" + d.path() + "/bdd", {.split = "val"});
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds.label_encoding(), LabelEncoding::train_ids19);
  const LoadedSample s = ds.load(0, ds.label_map(ClassSpace::cityscapes19));
  EXPECT_EQ(std::vector<uint8_t>(s.labels.ids.begin(), s.labels.ids.begin() + 3), (std::vector<uint8_t>{0, 18, 255}));
}

TEST(ListReader, PairsAnImageListWithALabelList) {
  TempDir d;
  write_png(d.file("l/img/a.png"), tu::pattern_image(kW, kH));
  write_png(d.file("l/img/b.png"), tu::pattern_image(kW, kH, 1));
  tu::write_grey_png(d.file("l/lab/a.png"), kW, kH, cycle({5}, kW * kH));
  tu::write_grey_png(d.file("l/lab/b.png"), kW, kH, cycle({6}, kW * kH));
  tu::write_text(d.file("l/images.txt"), "img/a.png\nimg/b.png\n");
  tu::write_text(d.file("l/labels.txt"), "lab/a.png\nlab/b.png\n");
  const std::string root = d.path() + "/l/";
  const Dataset ds = open_dataset("list:trainids=" + root + "images.txt," + root + "labels.txt");
  ASSERT_EQ(ds.size(), 2u);
  EXPECT_EQ(ds.load(1, ds.label_map(ClassSpace::cityscapes19)).labels.ids[0], 6);
  const Dataset unlabelled = open_dataset("list=" + root + "images.txt");
  EXPECT_FALSE(unlabelled.all_labelled());
  tu::write_text(d.file("l/short.txt"), "lab/a.png\n");
  EXPECT_NE(error_of([&] { open_list(root + "images.txt", root + "short.txt"); }).find("pair line by line"),
            std::string::npos);
}

TEST(DatasetSpec, ParsesKindQualifierAndPath) {
  const DatasetSpec s = parse_dataset_spec("nthu:Rome=/data/NTHU");
  EXPECT_EQ(s.kind, "nthu");
  EXPECT_EQ(s.qualifier, "Rome");
  EXPECT_EQ(s.path, "/data/NTHU");
  EXPECT_NE(error_of([] { parse_dataset_spec("/data/GTA5"); }).find("KIND=PATH"), std::string::npos);
  EXPECT_NE(error_of([] { parse_dataset_spec("kitti=/x"); }).find("unknown dataset kind"), std::string::npos);
  EXPECT_NE(error_of([] { parse_dataset_spec("nthu=/x"); }).find("needs a city"), std::string::npos);
}

TEST(BadInput, WrongRootSaysWhatWasExpectedAndFound) {
  TempDir d;
  write_gta5(d, 1);
  // Pointing the Cityscapes reader at a GTA5 tree.
  const std::string msg = error_of([&] { open_cityscapes(d.path() + "/gta", {.split = "val"}); });
  EXPECT_NE(msg.find("leftImg8bit/val/<city>"), std::string::npos) << msg;
  EXPECT_NE(msg.find("images/"), std::string::npos) << msg;  // what is there
  tu::write_jpeg(d.file("NTHU/Rome/Images/Train/a.jpg"), tu::pattern_image(kW, kH));
  const std::string msg3 = error_of([&] { open_dataset("nthu:paris=" + d.path() + "/NTHU"); });
  EXPECT_NE(msg3.find("city 'paris'"), std::string::npos) << msg3;
  EXPECT_NE(msg3.find("Rome/"), std::string::npos) << msg3;
  const std::string msg2 = error_of([&] { open_gta5(d.path() + "/nothing"); });
  EXPECT_NE(msg2.find("does not exist"), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("images/NNNNN.png"), std::string::npos) << msg2;
}

TEST(BadInput, ImageAndLabelOfDifferentSizesNameBoth) {
  TempDir d;
  write_gta5(d, 1);
  tu::write_palette_png(d.path() + "/gta/labels/00001.png", kW + 1, kH, cycle({7}, (kW + 1) * kH));
  const Dataset ds = open_gta5(d.path() + "/gta");
  const std::string msg = error_of([&] { ds.load(0, ds.label_map(ClassSpace::cityscapes19)); });
  EXPECT_NE(msg.find("images/00001.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("labels/00001.png"), std::string::npos) << msg;
}

TEST(BadInput, MissingGroundTruthFileIsNamed) {
  TempDir d;
  write_png(d.file("cs/leftImg8bit/val/ulm/ulm_000000_000019_leftImg8bit.png"), tu::pattern_image(kW, kH));
  std::filesystem::create_directories(d.path() + "/cs/gtFine/val/ulm");
  const std::string msg = error_of([&] { open_cityscapes(d.path() + "/cs", {.split = "val"}); });
  EXPECT_NE(msg.find("ulm_000000_000019_gtFine_labelIds.png"), std::string::npos) << msg;
}

TEST(BadInput, CorruptLabelInADatasetNamesTheFile) {
  TempDir d;
  write_gta5(d, 1);
  tu::write_text(d.path() + "/gta/labels/00001.png", "\x89PNG\r\n\x1a\n garbage");
  const Dataset ds = open_gta5(d.path() + "/gta");
  const std::string msg = error_of([&] { ds.load(0, ds.label_map(ClassSpace::cityscapes19)); });
  EXPECT_NE(msg.find("labels/00001.png"), std::string::npos) << msg;
}
