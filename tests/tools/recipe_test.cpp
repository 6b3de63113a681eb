// `--model small-deeplabv3plus` brings its recipe (the demo's, tools/cli/recipe.h) to the options
// of `cbst train` and `cbst adapt` that a command line leaves out; what it gives is written to
// config.toml and named in the log, what the user gives wins, a flag it turns on is turned off
// with --flag=false, and the paper's networks keep the plain defaults.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <utility>

#include "tests/tools/cli_runner.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;
using testing::read_text;
using testing::run_cbst;

using Settings = std::initializer_list<std::pair<const char*, const char*>>;

// config.toml holds `key=value`, strings quoted where CLI11 quotes them.
bool has_setting(const std::string& text, const std::string& key, const std::string& value) {
  const std::string t = "\n" + text + "\n";
  return t.find("\n" + key + "=" + value + "\n") != std::string::npos ||
         t.find("\n" + key + "=\"" + value + "\"\n") != std::string::npos;
}

class Recipe : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("cbst_recipe_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    // 8 source and 8 target images of 32x64: the recipe's batch of 4 makes 2 steps an epoch.
    const auto r = run_cbst("synth --out " + path("data") + " --size 32x64 --source 8 --target-train 8 --target-val 4 "
                            "--seed 3", path("synth.log"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string path(const std::string& rel) { return (dir_ / rel).string(); }
  static std::string train(const std::string& model, const std::string& extra, const std::string& run) {
    return "train --data gta5=" + path("data/gta5") + " --model " + model + " --epochs 1 --crop 32 --workers 1 " +
           extra + " --run " + path(run);
  }
  static std::string adapt(const std::string& init, const std::string& extra, const std::string& run,
                           const std::string& model = "--model small-deeplabv3plus") {
    return "adapt --source gta5=" + path("data/gta5") + " --target cityscapes=" + path("data/cityscapes") + " " +
           model + " --init " + path(init) + " --method cbst --rounds 1 --workers 1 " + extra + " --run " + path(run);
  }
  static fs::path dir_;
};
fs::path Recipe::dir_;

TEST_F(Recipe, TrainTakesTheSmallModelsRecipeWhereTheCommandLineIsSilent) {
  const auto r = run_cbst(train("small-deeplabv3plus", "--lr 0.05", "train"), path("train.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string config = read_text(path("train/config.toml"));
  for (const auto& [key, value] : Settings{{"epochs", "1"}, {"crop", "32"}, {"lr", "0.05"},  // given: kept
                                          {"batch", "4"}, {"poly", "true"}, {"warmup-iters", "50"},
                                          {"scale-range", "0.5,2"}, {"color-jitter", "0.2,0.2,0.2,0.05"},
                                          {"rare-class-sampling", "0.5"}})
    EXPECT_TRUE(has_setting(config, key, value)) << key << "=" << value << " in\n" << config;
  const std::string log = read_text(path("train/log.txt"));
  const size_t at = log.find("recipe: small-deeplabv3plus's for the options not given: ");
  ASSERT_NE(at, std::string::npos) << log;
  const std::string note = log.substr(at, log.find('\n', at) - at);
  EXPECT_NE(note.find("--batch 4 --scale-range 0.5,2 --color-jitter 0.2,0.2,0.2,0.05 --rare-class-sampling 0.5"),
            std::string::npos) << note;
  for (const char* given : {"--epochs", "--crop", "--lr"}) EXPECT_EQ(note.find(given), std::string::npos) << note;
  EXPECT_NE(note.find("--poly --warmup-iters 50"), std::string::npos) << note;
}

TEST_F(Recipe, AFlagTheRecipeTurnsOnIsTurnedOffWithFalse) {
  const auto r = run_cbst(train("small-deeplabv3plus", "--poly=false --color-jitter 0", "nopoly"), path("nopoly.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string config = read_text(path("nopoly/config.toml"));
  EXPECT_TRUE(has_setting(config, "poly", "false")) << config;
  EXPECT_TRUE(has_setting(config, "color-jitter", "0")) << config;
  const std::string log = read_text(path("nopoly/log.txt"));
  EXPECT_EQ(log.find("--poly"), std::string::npos) << log;
  EXPECT_EQ(log.find("--color-jitter"), std::string::npos) << log;
}

TEST_F(Recipe, ThePapersNetworksKeepThePlainDefaults) {
  const auto r = run_cbst(train("small-fcn", "", "fcn"), path("fcn.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string config = read_text(path("fcn/config.toml"));
  for (const auto& [key, value] :
       Settings{{"batch", "2"}, {"lr", "0.01"}, {"poly", "false"}, {"warmup-iters", "0"}, {"color-jitter", "0"}})
    EXPECT_TRUE(has_setting(config, key, value)) << key << "=" << value << " in\n" << config;
  EXPECT_EQ(read_text(path("fcn/log.txt")).find("  recipe"), std::string::npos);
}

TEST_F(Recipe, AdaptCropsTheTargetsShorterSideAndRunsAdaBNAndTheFlip) {
  ASSERT_EQ(run_cbst(train("small-deeplabv3plus", "", "source"), path("source.log")).exit_code, 0);
  auto r = run_cbst(adapt("source/checkpoints/final.safetensors", "", "adapt"), path("adapt.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string config = read_text(path("adapt/config.toml"));
  for (const auto& [key, value] :
       Settings{{"rounds", "1"},  // given
                {"crop", "32"}, {"lr", "0.00625"}, {"batch", "4"}, {"round-schedule", "poly"},
                {"portion", "0.2,0.05,0.5"}, {"source-portion", "0.2,0.05,0.5"}, {"epochs-per-round", "1"},
                {"adabn", "true"}, {"flip", "true"}, {"color-jitter", "0.2,0.2,0.2,0.05"},
                {"rare-class-sampling", "0.5"}, {"scale-range", "0.5,2"}})
    EXPECT_TRUE(has_setting(config, key, value)) << key << "=" << value << " in\n" << config;
  std::string log = read_text(path("adapt/log.txt"));
  EXPECT_NE(log.find("recipe : small-deeplabv3plus's for the options not given: "), std::string::npos) << log;
  EXPECT_NE(log.find("round 1/1: AdaBN,"), std::string::npos) << "--adabn ran" << log;

  r = run_cbst(adapt("source/checkpoints/final.safetensors", "--flip=false --crop 16", "adapt_noflip"),
               path("adapt_noflip.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  config = read_text(path("adapt_noflip/config.toml"));
  EXPECT_TRUE(has_setting(config, "flip", "false")) << config;
  EXPECT_TRUE(has_setting(config, "crop", "16")) << config;
  EXPECT_TRUE(has_setting(config, "adabn", "true")) << config;

  // --model left out: the checkpoint's model, and with it the recipe, as if typed.
  r = run_cbst(adapt("source/checkpoints/final.safetensors", "", "adapt_nomodel", ""), path("adapt_nomodel.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  config = read_text(path("adapt_nomodel/config.toml"));
  EXPECT_TRUE(has_setting(config, "model", "small-deeplabv3plus")) << config;
  EXPECT_TRUE(has_setting(config, "lr", "0.00625")) << config;
  EXPECT_NE(read_text(path("adapt_nomodel/log.txt")).find("recipe : small-deeplabv3plus's"), std::string::npos);
}

}  // namespace
}  // namespace cbst
