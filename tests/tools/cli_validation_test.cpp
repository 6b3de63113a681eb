// Options and config files that used to be accepted silently, and output errors that used
// to exit 0 (issue 11, defects 9 and 10).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "tests/tools/cli_runner.h"
#include "weights/safetensors.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;
using testing::run_cbst;

class CliValidation : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("cbst_cli_validation_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& rel) const { return (dir_ / rel).string(); }
  void write(const std::string& rel, const std::string& text) const { std::ofstream(path(rel)) << text; }
  // Options that reach validation without touching a dataset.
  std::string adapt_base() const {
    return "adapt --source gta5=" + path("none") + " --target cityscapes=" + path("none") + " --run " + path("run");
  }
  fs::path dir_;
};

TEST_F(CliValidation, NonsenseOptionValuesAreRefusedByName) {
  auto r = run_cbst("train --data gta5=" + path("none") + " --run " + path("run") + " --resize=-10", path("a.log"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--resize: -10 is out of range: it must lie in 0..16384;"), std::string::npos) << r.output;
  r = run_cbst(adapt_base() + " --lr-decay 0", path("b.log"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--lr-decay: must be > 0"), std::string::npos) << r.output;
  r = run_cbst(adapt_base() + " --portion 0.6,0.05,0.5", path("c.log"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("portion schedule '0.6,0.05,0.5'"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find(".cpp:"), std::string::npos) << "no source locations: " << r.output;
  EXPECT_FALSE(fs::exists(path("run"))) << "refused before the run folder is made";
}

// Issue 12: a run that fails validation (missing data, an unknown model, a missing --init)
// leaves no run folder behind; a folder that was there before stays.
TEST_F(CliValidation, FailedValidationLeavesNoRunFolder) {
  auto r = run_cbst("train --data gta5=" + path("none") + " --model small-fcn --run " + path("r1"), path("a.log"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("does not have the expected layout"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(path("r1")));
  r = run_cbst("synth --out " + path("data") + " --size 16x32 --source 2 --target-train 2 --target-val 1", path("s.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cbst("train --data gta5=" + path("data/gta5") + " --model no-such-net --run " + path("nested/r2"), path("b.log"));
  EXPECT_EQ(r.exit_code, 2) << "an unknown model name is a usage error";
  EXPECT_NE(r.output.find("--model: no-such-net not in {fcn8s-vgg16,"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(path("nested/r2")));
  r = run_cbst("adapt --source gta5=" + path("data/gta5") + " --target cityscapes=" + path("data/cityscapes") +
                   " --model small-fcn --init " + path("missing.safetensors") + " --method cbst --run " + path("r3"),
               path("c.log"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("missing.safetensors"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(path("r3")));
  fs::create_directories(path("mine"));
  r = run_cbst("train --data gta5=" + path("none") + " --model small-fcn --run " + path("mine"), path("d.log"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(fs::exists(path("mine"))) << "a folder the user made is not removed";
}

// Issue 12: --resume compares the options with the run's config.toml: what changes the
// training is refused by name with both values; workers, device, logging and evaluation may
// change, and the log says so.
TEST_F(CliValidation, ResumeRefusesOtherTrainingOptionsAndNamesThem) {
  auto r = run_cbst("synth --out " + path("data") + " --size 16x32 --source 2 --target-train 2 --target-val 1", path("s.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string base = "train --data gta5=" + path("data/gta5") + " --epochs 1 --batch 1 --crop 16 --run " + path("t");
  r = run_cbst(base + " --model small-fcn --lr 0.01", path("a.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cbst(base + " --lr 0.5 --model small-deeplabv3plus --resume", path("b.log"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("cbst: error: --resume with other options than the run was started with"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("lr: 0.01 -> 0.5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("model: small-fcn -> small-deeplabv3plus"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(path("t/checkpoints/final.safetensors"))) << "a refused resume leaves the run alone";
  r = run_cbst(base + " --model small-fcn --lr 0.01 --workers 1 --log-every 5 --resume", path("c.log"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resume with a changed option: workers: 2 -> 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("resume with a changed option: log-every: 20 -> 5"), std::string::npos) << r.output;
}

// Issue 12: usage errors (CLI11's) are one line like every other error, say where the
// options are described, and exit 2; runtime errors exit 1.
TEST_F(CliValidation, UsageErrorsAreOneLineAndExitTwo) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"nosuch", "cbst: error: unknown subcommand 'nosuch' (the subcommands are adabn, adapt, "},
      {"weights frobnicate", "cbst: error: unknown subcommand 'frobnicate' (the subcommands are inspect, convert)"},
      {"train --data gta5=x --epochs x", "cbst: error: --epochs: 'x' is not a number"},
      {"eval --data cityscapes=x --protocol 7", "cbst: error: --protocol: 7 not in {19,16,13,nthu}"},
      {"synth", "cbst: error: --out is required; see `cbst synth --help`"},
      {"train --data gta5=x --precision fp16", "cbst: error: --precision: fp16 not in {f32,bf16}"},
      {"bench train-step --precision f16", "cbst: error: --precision: f16 not in {f32,bf16}"},
      // CLI11's own wording, rewritten: the option first, lower case.
      {"synth --out x --bogus", "cbst: error: unknown option --bogus; see `cbst synth --help`"},
      {"synth --out x --bogus --worse", "cbst: error: unknown options --bogus, --worse;"},
      {"synth --out x extra", "cbst: error: unexpected argument 'extra'; see `cbst synth --help`"},
      {"synth --out", "cbst: error: --out needs a value; see `cbst synth --help`"},
      {"train --data gta5=x --run r --epochs 2 --epochs 3", "cbst: error: --epochs is given 2 times; give it once;"},
      {"train --data gta5=x --run r --no-flip=maybe", "cbst: error: --no-flip: 'maybe' is not true or false;"},
      // An unsigned option read "-3" as 2^64 - 3 and ran with it.
      {"synth --out " + path("neg") + " --seed -3", "cbst: error: --seed: -3 is negative; it must be 0 or more;"},
      {"demo --out " + path("neg") + " --seed -1", "cbst: error: --seed: -1 is negative; it must be 0 or more;"},
      {"demo --out " + path("neg") + " --adapt-flip maybe", "cbst: error: --adapt-flip: maybe not in {on,off};"},
      {"demo --out " + path("neg") + " --adapt-scales 0.9,,1.2",
       "cbst: error: --adapt-scales: '0.9,,1.2' is not a list of scales like 0.9,1,1.2 (each above 0, at most 8);"},
      {"adapt --source gta5=x --target cityscapes=y --run r --scales 1,0",
       "cbst: error: --scales: '1,0' is not a list of scales like 0.9,1,1.2 (each above 0, at most 8);"},
  };
  for (const auto& [args, start] : cases) {
    const auto r = run_cbst(args, path("u.log"));
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_EQ(r.output.rfind(start, 0), 0u) << args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("--help`"), std::string::npos) << args << "\n" << r.output;
  }
  EXPECT_FALSE(fs::exists(path("neg"))) << "a refused seed writes nothing";
  const auto help = run_cbst("train --help", path("h.log"));
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("--data"), std::string::npos);
  EXPECT_NE(help.output.find("--precision"), std::string::npos);
  const auto runtime = run_cbst("weights inspect " + path("missing.safetensors"), path("m.log"));
  EXPECT_EQ(runtime.exit_code, 1) << runtime.output;
}

// Issue 12: a failed check prints its message alone: no check expression, no source path
// (CBST_DEBUG_ERRORS=1 adds them back for developers).
TEST_F(CliValidation, ACheckFailurePrintsItsMessageWithoutExpressionOrSourcePath) {
  write("file", "not a folder");
  const auto r = run_cbst("demo --out " + path("file"), path("d.log"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output.rfind("cbst: error: " + path("file") + " exists and is not a folder; pass another --out DIR", 0),
            0u) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_EQ(r.output.find("check `"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find(".cpp"), std::string::npos) << r.output;
  const auto debug = run_cbst("demo --out " + path("file"), path("e.log"), "CBST_DEBUG_ERRORS=1");
  EXPECT_NE(debug.output.find(".cpp:"), std::string::npos) << debug.output;
}

TEST_F(CliValidation, UnknownConfigKeysAndSectionsAreErrors) {
  write("typo.toml", "[adapt]\nportoin = \"0.2,0.05,0.5\"\n");
  auto r = run_cbst("--config " + path("typo.toml") + " " + adapt_base(), path("a.log"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.output.rfind("cbst: error: the config file sets 'portoin' in [adapt], which names no option there", 0), 0u)
      << r.output;
  write("section.toml", "[adpat]\nportion = \"0.2,0.05,0.5\"\n");
  r = run_cbst("--config " + path("section.toml") + " " + adapt_base(), path("b.log"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.output.rfind("cbst: error: the config file's section [adpat] names no subcommand here;", 0), 0u) << r.output;
  write("top.toml", "rounds = 2\n[adapt]\n");
  r = run_cbst("--config " + path("top.toml") + " " + adapt_base(), path("d.log"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.output.rfind("cbst: error: the config file sets 'rounds' outside any [section],", 0), 0u) << r.output;
  r = run_cbst("--config " + path("missing.toml") + " " + adapt_base(), path("e.log"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.output.rfind("cbst: error: cannot read the config file '" + path("missing.toml") + "'; is the path right?", 0),
            0u) << r.output;
  write("twice.toml", "[adapt]\nrounds = 2\nrounds = 3\n");
  r = run_cbst("--config " + path("twice.toml") + " " + adapt_base(), path("f.log"));
  EXPECT_EQ(r.output.rfind("cbst: error: --rounds is given 2 times; give it once;", 0), 0u) << r.output;
  // A known key is read: its bad value is reported as if given on the command line.
  write("good.toml", "[adapt]\nportion = \"0.7,0.05,0.5\"\n");
  r = run_cbst("--config " + path("good.toml") + " " + adapt_base(), path("c.log"));
  EXPECT_NE(r.output.find("portion schedule '0.7,0.05,0.5'"), std::string::npos) << r.output;
}

// CLI11 reads a config file line by line and stopped quietly at a line too long for memory,
// running with what it had read: a file that cannot be options is refused unread.
TEST_F(CliValidation, AConfigFileTooLargeToBeOptionsIsRefused) {
  { std::ofstream(path("huge.toml")) << "[adapt]\n# "; }
  fs::resize_file(path("huge.toml"), uint64_t(2) << 30);  // sparse: nothing is written
  const auto r = run_cbst("--config " + path("huge.toml") + " weights inspect " + path("none"), path("a.log"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("config file '" + path("huge.toml") + "' is 2147483648 bytes"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("cannot open"), std::string::npos) << "refused before the command ran: " << r.output;
}

TEST_F(CliValidation, PseudolabelRefusesNanOrOutOfRangeProbabilities) {
  for (const float bad : {NAN, -0.25f, 1.5f}) {
    weights::TensorMap in;
    in.insert("probs", Tensor::from_vector<float>({0.5f, 0.5f, bad, 0.1f}, {1, 2, 1, 2}));
    weights::write_safetensors(path("probs.safetensors"), in);
    const auto r = run_cbst("pseudolabel --probs " + path("probs.safetensors") + " --method cbst --portion 0.5 --out " +
                                path("out"), path("p.log"));
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.output.find("probs.safetensors: probs holds"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("at element 2 of 4; probabilities must lie in [0, 1]"), std::string::npos) << r.output;
  }
}

// Every epoch drops its last partial batch, so fewer images than one batch used to train
// nothing, write the initial weights as "final" and exit 0. Now it is refused before the run
// folder is made, with the image count and a batch size that works.
TEST_F(CliValidation, FewerImagesThanOneBatchAreRefused) {
  auto r = run_cbst("synth --out " + path("data") + " --size 16x32 --source 3 --target-train 2 --target-val 1", path("s.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string train = "train --data gta5=" + path("data/gta5") + " --model small-fcn --epochs 1 --crop 16 --workers 0 --run ";
  r = run_cbst(train + path("r1") + " --batch 4", path("a.log"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("cbst: error: --data has 3 images, fewer than one batch of 4; each epoch drops its last "
                          "partial batch, so nothing would be trained. Use --batch 3 or more images"),
            std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(path("r1")));
  r = run_cbst(train + path("r2") + " --batch 3", path("b.log"));
  ASSERT_EQ(r.exit_code, 0) << "a set of exactly one batch trains: " << r.output;

  // adapt: the smallest round is the first of a growing source share (1 of 3, then 2 of 3).
  const std::string adapt = "adapt --source gta5=" + path("data/gta5") + " --target cityscapes=" +
                            path("data/cityscapes") + " --model small-fcn --init " + path("r2/checkpoints/final.safetensors") +
                            " --method cbst --rounds 2 --source-portion 0.34,0.33,1 --crop 16 --workers 0 --run ";
  r = run_cbst(adapt + path("r3") + " --batch 4", path("c.log"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("cbst: error: round 1 (1 source image and 2 target images) has 3 images, fewer than one "
                          "batch of 4;"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(path("r3")));
  r = run_cbst(adapt + path("r4") + " --batch 3", path("d.log"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(CliValidation, AFullStdoutIsAnError) {
  const std::string cmd = testing::cbst_binary().string() + " --version > /dev/full 2> " + path("err.log");
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  std::stringstream err;
  err << std::ifstream(path("err.log")).rdbuf();
  EXPECT_NE(err.str().find("writing to standard output failed"), std::string::npos) << err.str();
}

}  // namespace
}  // namespace cbst
