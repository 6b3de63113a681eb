// `cbst adabn` end to end: a small-deeplabv3plus checkpoint gets a tiny Cityscapes split's
// batch-norm statistics; the written checkpoint keeps every weight, `cbst eval` reads it, and
// a bad checkpoint is one line of error with nothing written.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "models/weight_import.h"
#include "tests/tools/cli_runner.h"
#include "tests/tools/tiny_cityscapes.h"
#include "weights/load_weights.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;

class AdabnCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("cbst_adabn_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    testing::write_tiny_cityscapes_val(dir_ / "cs", 48, 32, 3);
    model_ = create_model("small-deeplabv3plus", {.num_classes = 19, .seed = 3});
    weights::save_checkpoint((dir_ / "source.safetensors").string(),
                             model_checkpoint(*model_, model_->input_convention()));
  }
  void TearDown() override { fs::remove_all(dir_); }

  testing::CliResult run(const std::string& args) { return testing::run_cbst(args, (dir_ / "log.txt").string()); }

  static std::vector<double> values(const Tensor& t) { return t.to(DType::f64).to_vector<double>(); }

  fs::path dir_;
  std::shared_ptr<SegmentationModel> model_;
};

TEST_F(AdabnCommand, WritesTheTargetStatisticsAndKeepsEveryWeight) {
  const fs::path out = dir_ / "adabn.safetensors";
  const testing::CliResult r = run("adabn --checkpoint " + (dir_ / "source.safetensors").string() +
                                   " --data cityscapes=" + (dir_ / "cs").string() + ":val --batch 2 --out " +
                                   out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("3 images"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("2 batches"), std::string::npos) << r.output;

  const auto adapted = load_model_checkpoint(out.string(), "small-deeplabv3plus");
  const auto before = model_->state_dict();
  int changed = 0, buffers = 0;
  for (const auto& [name, t] : adapted->named_parameters()) EXPECT_EQ(values(t), values(before.at(name))) << name;
  for (const auto& [name, t] : adapted->named_buffers()) {
    if (name.ends_with("num_batches_tracked")) {
      EXPECT_EQ(t.item<int64_t>(), 2) << name;
    } else {
      ++buffers;
      if (values(t) != values(before.at(name))) ++changed;
    }
  }
  EXPECT_GT(buffers, 0);
  EXPECT_EQ(changed, buffers) << "every running mean and variance is re-estimated";

  const testing::CliResult e = run("eval --data cityscapes=" + (dir_ / "cs").string() + " --split val --checkpoint " +
                                   out.string());
  EXPECT_EQ(e.exit_code, 0) << e.output;

  // The model runs as in training, dropout included: another --seed draws other masks, which
  // moves the statistics of the layers after the dropout and of no layer before it.
  const fs::path other = dir_ / "adabn_seed2.safetensors";
  const testing::CliResult r2 = run("adabn --checkpoint " + (dir_ / "source.safetensors").string() +
                                    " --data cityscapes=" + (dir_ / "cs").string() + ":val --batch 2 --seed 2 --out " +
                                    other.string());
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  const auto reseeded = load_model_checkpoint(other.string(), "small-deeplabv3plus");
  const auto first = adapted->state_dict();
  int same = 0, moved = 0;
  for (const auto& [name, t] : reseeded->named_buffers()) {
    if (name.ends_with("num_batches_tracked")) continue;
    (values(t) == values(first.at(name)) ? same : moved)++;
  }
  EXPECT_GT(same, 0);
  EXPECT_GT(moved, 0);
}

TEST_F(AdabnCommand, ABadCheckpointIsOneLineAndWritesNothing) {
  const fs::path bad = dir_ / "bad.safetensors", out = dir_ / "adabn.safetensors";
  { std::ofstream(bad) << "not a safetensors file"; }
  const testing::CliResult r = run("adabn --checkpoint " + bad.string() + " --data cityscapes=" +
                                   (dir_ / "cs").string() + ":val --out " + out.string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.output.rfind("cbst: error: ", 0), 0u) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace cbst
