// Issue 12: one name per idea and one device rule across subcommands, through the binary.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/cuda_context.h"
#include "tests/tools/cli_runner.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;
using testing::run_cbst;

class CliVocabulary : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("cbst_cli_vocabulary_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& rel) const { return (dir_ / rel).string(); }
  static std::string slurp(const std::string& file) {
    std::ifstream in(file);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  fs::path dir_;
};

// Every subcommand runs on the CPU unless told `--device cuda`: the benchmarks too (they used
// to pick CUDA when a GPU was present, unlike everything else).
TEST_F(CliVocabulary, BenchmarksRunOnTheCpuUnlessToldOtherwise) {
  const auto r = run_cbst("bench train-step --model small-fcn --size 32 --batch 1 --steps 1 --warmup 1 --json " +
                              path("step.json"),
                          path("step.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(slurp(path("step.json")).find("\"device\": \"cpu\""), std::string::npos) << slurp(path("step.json"));
  for (const char* sub : {"bench conv", "bench train-step", "bench ops"}) {
    const auto help = run_cbst(std::string(sub) + " --help", path("h.log"));
    EXPECT_NE(help.output.find("--device TEXT=cpu"), std::string::npos) << sub << " --help shows the default:\n" << help.output;
  }
}

// `bench ops` times each op of its table, with the bytes it moves, into its JSON; asked for a
// GPU that is not there, it says so in one line.
TEST_F(CliVocabulary, BenchOpsTimesEveryOpAndWritesItsJson) {
  const auto r = run_cbst("bench ops --batch 1 --repeats 1 --json " + path("ops.json"), path("ops.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string json = slurp(path("ops.json"));
  for (const char* op : {"relu", "add channel bias", "nchw to nhwc copy", "sum of all", "argmax over classes"})
    EXPECT_NE(json.find(std::string("\"op\": \"") + op + "\""), std::string::npos) << op << "\n" << json;
  // relu at batch 1 reads and writes 32 · 128² floats: 2 · 2 MiB.
  EXPECT_NE(json.find("\"bytes\": 4194304.0"), std::string::npos) << json;
  if (!cuda_available()) {
    const auto gpu = run_cbst("bench ops --device cuda", path("gpu.log"));
    EXPECT_NE(gpu.exit_code, 0);
    EXPECT_NE(gpu.output.find("cbst: error: bench ops: --device cuda but no CUDA device is available"),
              std::string::npos) << gpu.output;
  }
}

// `bench labeling` says --method like adapt and pseudolabel; the old --policy is unknown.
TEST_F(CliVocabulary, BenchLabelingSaysMethodLikeAdapt) {
  const auto ok = run_cbst("bench labeling --images 1 --size 64x64 --stride 8 --method st --repeats 1 --json " +
                               path("l.json"),
                           path("l.log"));
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(slurp(path("l.json")).find("\"method\": \"st\""), std::string::npos) << slurp(path("l.json"));
  const auto old = run_cbst("bench labeling --policy st", path("p.log"));
  EXPECT_EQ(old.exit_code, 2) << old.output;
  const auto bad = run_cbst("bench labeling --method sp", path("b.log"));
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
}

// A default that a run folder's config.toml records must read back as the same number:
// --lr-decay's √2 printed with six digits came back as 1.41421.
TEST_F(CliVocabulary, TheLrDecayDefaultIsWrittenInFull) {
  const auto help = run_cbst("adapt --help", path("h.log"));
  EXPECT_NE(help.output.find("1.4142135623730951"), std::string::npos) << help.output;
}

}  // namespace
}  // namespace cbst
