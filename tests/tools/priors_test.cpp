// `cbst priors` end to end: writes a tiny GTA5 tree, runs the program, and compares its file
// with the library's compute_spatial_prior; without --size the grid is the first label map's
// size, reduced past 512; a bad --size must fail with a one-line error.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "tests/tools/cli_runner.h"
#include "selftrain/spatial_prior.h"
#include "tests/data/data_test_util.h"
#include "weights/safetensors.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;
using data::test_util::TempDir;

class PriorsCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(cbst_)) << cbst_ << " is missing: build the `cbst` target first";
    // Two label maps of different sizes: sky (labelId 23) on top, road (7) below, car (26)
    // in the bottom-right quarter.
    for (auto [i, h, w] : std::vector<std::tuple<int, int, int>>{{1, 16, 24}, {2, 8, 12}}) {
      std::vector<uint8_t> ids(size_t(h * w));
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) ids[size_t(y * w + x)] = y < h / 2 ? 23 : (x < w / 2 ? 7 : 26);
      const std::string stem = "0000" + std::to_string(i);
      data::write_png(dir_.file("gta/images/" + stem + ".png"), data::test_util::pattern_image(w, h, i));
      data::test_util::write_palette_png(dir_.file("gta/labels/" + stem + ".png"), w, h, ids);
    }
  }

  // Runs `cbst ARGS`; returns the exit code, stdout+stderr in `output_`.
  int run(const std::string& args) {
    const testing::CliResult r = testing::run_cbst(args, dir_.file("log.txt"));
    output_ = r.output;
    return r.exit_code;
  }

  TempDir dir_;
  fs::path cbst_ = fs::path(CBST_BINARY_DIR) / "tools" / "cbst";
  std::string output_;
};

TEST_F(PriorsCommand, WritesTheLibrarysPriorAndAPerClassSummary) {
  const std::string out = dir_.file("prior.safetensors");
  const std::string data = "gta5=" + dir_.path() + "/gta";
  ASSERT_EQ(run("priors --data " + data + " --size 4x6 --sigma 2 --workers 2 --out " + out), 0) << output_;
  EXPECT_NE(output_.find("wrote " + out), std::string::npos) << output_;
  EXPECT_NE(output_.find("road"), std::string::npos) << output_;
  EXPECT_NE(output_.find("never seen"), std::string::npos) << output_;  // e.g. bicycle

  const SpatialPrior got = load_spatial_prior(out);
  ASSERT_EQ(got.prior.shape(), (Shape{19, 4, 6}));
  const Tensor want = compute_spatial_prior(data::open_dataset(data),
                                            {.height = 4, .width = 6, .sigma = 2, .num_classes = 19});
  EXPECT_EQ(got.prior.to_vector<float>(), want.to_vector<float>());
  EXPECT_EQ(got.metadata.sigma, 2.0);
  EXPECT_EQ(got.metadata.support, 70.0);
  EXPECT_EQ(got.metadata.images, 2);
  EXPECT_EQ(got.metadata.image_height, 12.0);  // mean of 16 and 8
  EXPECT_EQ(got.metadata.source, data);
  EXPECT_EQ(got.metadata.class_space, "cityscapes19");

  // The file is what `cbst pseudolabel --prior` takes.
  weights::TensorMap probs;
  probs.insert("probs", Tensor::full({1, 19, 2, 3}, 1.0 / 19));
  const std::string probs_path = dir_.file("probs.safetensors");
  weights::write_safetensors(probs_path, probs);
  EXPECT_EQ(run("pseudolabel --probs " + probs_path + " --method cbst-sp --prior " + out + " --label-size 4x6 --out " +
                dir_.file("labels.safetensors")),
            0)
      << output_;
}

TEST_F(PriorsCommand, SixteenClassesAndTheDefaultSigma) {
  const std::string out = dir_.file("prior16.safetensors");
  ASSERT_EQ(run("priors --data gta5=" + dir_.path() + "/gta --size 3x5 --classes 16 --out " + out), 0)
      << output_;
  const SpatialPrior got = load_spatial_prior(out);
  EXPECT_EQ(got.prior.shape(), (Shape{16, 3, 5}));
  EXPECT_EQ(got.metadata.sigma, 70.0 / 6);
  EXPECT_EQ(got.metadata.class_space, "synthia16");
}

TEST_F(PriorsCommand, WithoutSizeTheGridIsTheFirstLabelMapsSize) {
  const std::string out = dir_.file("default.safetensors");
  const std::string data = "gta5=" + dir_.path() + "/gta";
  ASSERT_EQ(run("priors --data " + data + " --out " + out), 0) << output_;
  EXPECT_NE(output_.find("grid 16x24: the first label map's size (16x24); --size to choose another"),
            std::string::npos)
      << output_;
  const SpatialPrior got = load_spatial_prior(out);
  ASSERT_EQ(got.prior.shape(), (Shape{19, 16, 24}));
  const Tensor want =
      compute_spatial_prior(data::open_dataset(data), {.height = 16, .width = 24, .num_classes = 19});
  EXPECT_EQ(got.prior.to_vector<float>(), want.to_vector<float>());
}

TEST_F(PriorsCommand, WithoutSizeALargeMapIsDividedToAtMost512) {
  // 520x1030: the smallest whole factor bringing 1030 to <= 512 is 3, so 174x344 (rounded up).
  const int h = 520, w = 1030;
  std::vector<uint8_t> ids(size_t(h * w), 7);
  data::write_png(dir_.file("big/images/00001.png"), data::test_util::pattern_image(w, h, 1));
  data::test_util::write_palette_png(dir_.file("big/labels/00001.png"), w, h, ids);
  const std::string out = dir_.file("big.safetensors");
  ASSERT_EQ(run("priors --data gta5=" + dir_.path() + "/big --out " + out), 0) << output_;
  EXPECT_NE(output_.find("grid 174x344: the first label map's size (520x1030) divided by 3"), std::string::npos)
      << output_;
  EXPECT_EQ(load_spatial_prior(out).prior.shape(), (Shape{19, 174, 344}));
}

TEST_F(PriorsCommand, BadSizeFailsWithOneLine) {
  const std::string out = dir_.file("bad.safetensors");
  EXPECT_EQ(run("priors --data gta5=" + dir_.path() + "/gta --size 4by6 --out " + out), 1) << output_;
  EXPECT_EQ(output_.rfind("cbst: error: --size '4by6'", 0), 0u) << output_;
  EXPECT_EQ(output_.find('\n'), output_.size() - 1) << output_;  // one line
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(PriorsCommand, MissingDatasetFailsWithExitCodeOne) {
  EXPECT_EQ(run("priors --data gta5=" + dir_.path() + "/nothing --size 4x6 --out " + dir_.file("x.safetensors")),
            1)
      << output_;
  EXPECT_EQ(output_.rfind("cbst: error: ", 0), 0u) << output_;
}

}  // namespace
}  // namespace cbst
