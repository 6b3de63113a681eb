// `cbst pseudolabel` end to end: writes probabilities (and a prior) as safetensors, runs the
// program, and compares its output file with the library's class_thresholds/pseudo_labels.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/tools/cli_runner.h"
#include "selftrain/pseudo_labels.h"
#include "tests/selftrain/labeling_cases.h"
#include "weights/safetensors.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;

class PseudolabelCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("cbst_pseudolabel_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    ASSERT_TRUE(fs::exists(cbst_)) << cbst_ << " is missing: build the `cbst` target first";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs `cbst ARGS`, returns the exit status; stdout+stderr go to `output_`.
  int run(const std::string& args) {
    const testing::CliResult r = testing::run_cbst(args, (dir_ / "log.txt").string());
    output_ = r.output;
    return r.exit_code;
  }

  fs::path dir_;
  fs::path cbst_ = fs::path(CBST_BINARY_DIR) / "tools" / "cbst";
  std::string output_;
};

TEST_F(PseudolabelCommand, WritesTheLibrarysLabelsThresholdsAndPoolSizes) {
  const testing::LabelingCase c{"cli", 2, 5, 6, 8, 13, 17, 4, 5, ThresholdPolicy::cbst, 0.3, 2};
  const testing::LabelingProblem p = testing::make_problem(c);
  weights::TensorMap in;
  in.insert("probs", p.probs);
  weights::write_safetensors((dir_ / "probs.safetensors").string(), in);
  weights::TensorMap prior;
  prior.insert("spatial_prior", p.prior);
  weights::write_safetensors((dir_ / "prior.safetensors").string(), prior);

  const fs::path out = dir_ / "out.safetensors";
  ASSERT_EQ(run("pseudolabel --probs " + (dir_ / "probs.safetensors").string() + " --prior " +
                (dir_ / "prior.safetensors").string() +
                " --method cbst-sp --portion 0.3 --label-size 13x17 --pool-stride 2 --out " + out.string()),
            0)
      << output_;
  EXPECT_NE(output_.find("threshold"), std::string::npos) << output_;

  const ClassThresholds want = class_thresholds(p.probs, p.prior, testing::threshold_params(c));
  const PseudoLabels want_labels =
      pseudo_labels(p.probs, p.prior, want.thresholds, {.label_size = {13, 17}});
  const weights::TensorMap got = weights::read_safetensors(out.string());
  EXPECT_EQ(got.at("thresholds").to_vector<float>(), want.thresholds.to_vector<float>());
  EXPECT_EQ(got.at("pool_sizes").to_vector<int64_t>(), want.pool_sizes.to_vector<int64_t>());
  EXPECT_EQ(got.at("labels").shape(), (Shape{2, 13, 17}));
  EXPECT_EQ(got.at("labels").to_vector<uint8_t>(), want_labels.labels.to_vector<uint8_t>());
  EXPECT_EQ(got.metadata.at("method"), "cbst-sp");
}

TEST_F(PseudolabelCommand, StPolicyAtProbabilityResolutionGivesOneThreshold) {
  const testing::LabelingCase c{"cli_st", 1, 4, 7, 9, 7, 9, 0, 0, ThresholdPolicy::st, 0.5, 1};
  const testing::LabelingProblem p = testing::make_problem(c);
  weights::TensorMap in;
  in.insert("probs", p.probs);
  weights::write_safetensors((dir_ / "probs.safetensors").string(), in);
  const fs::path out = dir_ / "out.safetensors";
  ASSERT_EQ(run("pseudolabel --probs " + (dir_ / "probs.safetensors").string() +
                " --method st --portion 0.5 --confidence --out " + out.string()),
            0)
      << output_;
  const weights::TensorMap got = weights::read_safetensors(out.string());
  const std::vector<float> t = got.at("thresholds").to_vector<float>();
  EXPECT_EQ(t, std::vector<float>(4, t[0]));
  EXPECT_EQ(t, class_thresholds(p.probs, Tensor(), testing::threshold_params(c))
                   .thresholds.to_vector<float>());
  EXPECT_EQ(got.at("confidence").shape(), (Shape{1, 7, 9}));
}

TEST_F(PseudolabelCommand, AFileWithoutProbsIsRefusedWithAMessage) {
  weights::TensorMap in;
  in.insert("logits", Tensor::zeros({1, 2, 3, 3}));
  weights::write_safetensors((dir_ / "bad.safetensors").string(), in);
  EXPECT_NE(run("pseudolabel --probs " + (dir_ / "bad.safetensors").string() + " --out " +
                (dir_ / "out.safetensors").string()),
            0);
  EXPECT_NE(output_.find("no tensor named 'probs'"), std::string::npos) << output_;
  EXPECT_FALSE(fs::exists(dir_ / "out.safetensors"));
}

TEST_F(PseudolabelCommand, ABadLabelSizeIsRefused) {
  weights::TensorMap in;
  in.insert("probs", Tensor::full({1, 2, 3, 3}, 0.5));
  weights::write_safetensors((dir_ / "probs.safetensors").string(), in);
  EXPECT_NE(run("pseudolabel --probs " + (dir_ / "probs.safetensors").string() +
                " --label-size 12by4 --out " + (dir_ / "out.safetensors").string()),
            0);
  EXPECT_NE(output_.find("--label-size"), std::string::npos) << output_;
}

}  // namespace
}  // namespace cbst
