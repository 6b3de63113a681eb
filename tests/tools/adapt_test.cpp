// `cbst train` and `cbst adapt` end to end on a tiny generated two-domain benchmark: every
// method runs, a killed run resumes to the same numbers, a diverging loss stops the run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "data/dataset.h"
#include "data/image.h"
#include "engine/json.h"
#include "tests/support/expect_close.h"
#include "tests/tools/cli_runner.h"
#include "weights/json.h"
#include "weights/load_weights.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;
using testing::run_cbst;

class AdaptCommand : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("cbst_adapt_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    auto r = run_cbst("synth --out " + path("data") + " --size 32x64 --source 8 --target-train 8 --target-val 4 --seed 3",
                      path("synth.log"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = run_cbst("train --data gta5=" + path("data/gta5") + " --model small-fcn --epochs 2 --batch 2 --crop 32 "
                 "--lr 0.05 --workers 1 --run " + path("source"), path("train.log"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = run_cbst("priors --data gta5=" + path("data/gta5") + " --size 8x16 --out " + path("prior.safetensors"),
                 path("priors.log"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static std::string path(const std::string& rel) { return (dir_ / rel).string(); }
  static std::string adapt_args(const std::string& method, const std::string& run) {
    return "adapt --source gta5=" + path("data/gta5") + " --target cityscapes=" + path("data/cityscapes") +
           " --eval cityscapes=" + path("data/cityscapes") + ":val --model small-fcn --init " +
           path("source/checkpoints/final.safetensors") + " --method " + method + " --prior " +
           path("prior.safetensors") + " --rounds 2 --epochs-per-round 1 --batch 2 --crop 32 --lr 0.02 " +
           "--source-portion 0.5,0.25,1.0 --workers 2 --run " + path(run);
  }
  static std::string read(const std::string& rel) {
    std::ifstream f(path(rel));
    return std::string(std::istreambuf_iterator<char>(f), {});
  }

  static fs::path dir_;
};
fs::path AdaptCommand::dir_;

class AdaptMethods : public AdaptCommand, public ::testing::WithParamInterface<std::string> {};

TEST_P(AdaptMethods, RunsTwoRoundsAndWritesTheRunFolder) {
  const std::string run = "run_" + GetParam();
  const auto r = run_cbst(adapt_args(GetParam(), run), path(run + ".log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* f : {"config.toml", "log.txt", "metrics.jsonl", "summary.json", "eval/initial.json",
                        "eval/round_1.json", "eval/round_2.json", "eval/final.json", "checkpoints/final.safetensors",
                        "checkpoints/best.safetensors", "checkpoints/latest", "report.html"})
    EXPECT_TRUE(fs::exists(path(run + "/" + f))) << f;
  // The final checkpoint holds the weights and what names them; the optimizer's state and
  // the position stay in the resumable round checkpoint.
  const auto final_weights = weights::load_checkpoint(path(run + "/checkpoints/final.safetensors"));
  const auto last_round = weights::load_checkpoint(path(run + "/checkpoints/round_2.safetensors"));
  size_t optimizer_tensors = 0;
  for (auto& [name, t] : last_round) {
    if (name.rfind("optimizer.", 0) == 0) {
      ++optimizer_tensors;
      EXPECT_FALSE(final_weights.contains(name)) << name;
    } else {
      CBST_EXPECT_CLOSE(name, final_weights.at(name), t, 0.0, 0.0);
    }
  }
  EXPECT_GT(optimizer_tensors, 0u);
  EXPECT_EQ(final_weights.size() + optimizer_tensors, last_round.size());
  EXPECT_EQ(final_weights.metadata.count("round"), 0u);
  EXPECT_EQ(final_weights.metadata.at("model"), "small-fcn");
  const nlohmann::json summary = weights::parse_json(read(run + "/summary.json"));
  EXPECT_EQ(summary.value("method", ""), GetParam()) << summary;
  ASSERT_TRUE(summary.contains("rounds") && summary["rounds"].size() == 2) << summary;
  EXPECT_EQ(summary["rounds"][0].value("round", 0), 1) << "rounds count from 1";
  EXPECT_EQ(summary["rounds"][0].value("source_images", 0), 4) << "round 1 uses half the source";
  EXPECT_EQ(summary["rounds"][1].value("source_images", 0), 6) << "round 2 uses 0.75 of it";
  if (GetParam() == "source-only") {
    EXPECT_FALSE(fs::exists(path(run + "/rounds/1/thresholds.json")));
    return;
  }
  const nlohmann::json thr = weights::parse_json(read(run + "/rounds/2/thresholds.json"));
  EXPECT_EQ(thr.value("portion", 0.0), 0.25) << thr;
  EXPECT_EQ(thr.value("policy", ""), GetParam().rfind("st", 0) == 0 ? "st" : "cbst") << thr;
  EXPECT_EQ(std::distance(fs::directory_iterator(path(run + "/rounds/1/pseudo")), fs::directory_iterator()),
            8 + 4) << "8 pseudo-label maps and 4 colourised previews";
  EXPECT_TRUE(summary["rounds"][1].contains("pseudo_accuracy")) << summary;
}

INSTANTIATE_TEST_SUITE_P(AllMethods, AdaptMethods,
                         ::testing::Values("source-only", "st", "cbst", "st-sp", "cbst-sp"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST_F(AdaptCommand, KilledRunResumesToTheSameNumbersAsAnUninterruptedOne) {
  auto r = run_cbst(adapt_args("cbst-sp", "whole"), path("whole.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Round 1 trains 4+8 images in batches of 2 (6 steps): step 8 is inside round 2.
  r = run_cbst(adapt_args("cbst-sp", "killed"), path("killed.log"), "CBST_TEST_ABORT_AT_STEP=8");
  ASSERT_EQ(r.exit_code, 137) << r.output;
  EXPECT_TRUE(fs::exists(path("killed/checkpoints/round_1.safetensors")));
  EXPECT_FALSE(fs::exists(path("killed/summary.json")));
  r = run_cbst(adapt_args("cbst-sp", "killed") + " --resume", path("resumed.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resume : after round 1"), std::string::npos) << r.output;
  EXPECT_EQ(read("whole/summary.json"), read("killed/summary.json"));
  const auto a = weights::load_checkpoint(path("whole/checkpoints/final.safetensors"));
  const auto b = weights::load_checkpoint(path("killed/checkpoints/final.safetensors"));
  ASSERT_EQ(a.size(), b.size());
  for (auto& [name, t] : a) CBST_EXPECT_CLOSE(name, b.at(name), t, 0.0, 0.0);
}

TEST_F(AdaptCommand, F16ProbabilityCacheHalvesTheCacheAndRuns) {
  const auto r = run_cbst(adapt_args("cbst", "f16") + " --prob-cache-precision f16", path("f16.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("f16 in cpu memory"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(path("f16/rounds/2/thresholds.json")));
}

TEST_F(AdaptCommand, ResumeWithoutARunAndANewRunOverAnOldOneAreErrors) {
  auto r = run_cbst(adapt_args("cbst", "nothing_here") + " --resume", path("e1.log"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("cbst: error: --resume"), std::string::npos) << r.output;
  r = run_cbst("train --data gta5=" + path("data/gta5") + " --epochs 1 --crop 32 --run " + path("source"), path("e2.log"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("already holds a run"), std::string::npos) << r.output;
}

// The share of target pixels that carry a pseudo-label in round 1 (rounds/1/summary.json).
double round1_coverage(const std::string& summary) {
  const Json j = Json::parse(summary, nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.contains("pseudo_coverage") ? j["pseudo_coverage"].get<double>() : -1.0;
}

// The run's regulariser, its weight and the pool sampling, as summary.json records them.
std::string crst_record(const std::string& summary) {
  const Json j = Json::parse(summary, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return "not JSON: " + summary;
  return j.value("regularizer", "?") + " " + json_text(j.value("reg_weight", Json())) + " " + j.value("pool_sampling", "?");
}

// CRST end to end: both regularisers train, the records name them, and LRENT's rule labels a
// superset of hard CBST's pixels (round 1: same model, same thresholds).
TEST_F(AdaptCommand, CrstRegularizersRunAndAreRecorded) {
  auto r = run_cbst(adapt_args("cbst", "crst_none") + " --pool-sampling authors", path("crst_none.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cbst(adapt_args("cbst", "crst_mrkld") + " --regularizer mrkld", path("crst_mrkld.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cbst(adapt_args("cbst", "crst_lrent") + " --regularizer lrent --pool-sampling authors",
               path("crst_lrent.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string none = read("crst_none/summary.json"), mrkld = read("crst_mrkld/summary.json"),
                    lrent = read("crst_lrent/summary.json");
  EXPECT_EQ(crst_record(none), "none 0.0 authors");
  EXPECT_EQ(crst_record(mrkld), "mrkld 0.01 pixel-index");
  EXPECT_EQ(crst_record(lrent), "lrent 0.25 authors");
  EXPECT_EQ(read("crst_none/rounds/1/thresholds.json").substr(0, 200),
            read("crst_lrent/rounds/1/thresholds.json").substr(0, 200)) << "the regulariser leaves the thresholds";
  const double hard = round1_coverage(read("crst_none/rounds/1/summary.json"));
  const double soft = round1_coverage(read("crst_lrent/rounds/1/summary.json"));
  EXPECT_GT(hard, 0.0);
  EXPECT_GE(soft, hard);
  EXPECT_NE(mrkld, none);  // the regulariser changed the training
}

TEST_F(AdaptCommand, CrstRegularizerMisuseIsAUserError) {
  auto r = run_cbst(adapt_args("source-only", "crst_e1") + " --regularizer mrkld", path("crst_e1.log"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("cbst: error: --regularizer mrkld"), std::string::npos) << r.output;
  r = run_cbst(adapt_args("cbst", "crst_e2") + " --regularizer lrent --class-weights balanced", path("crst_e2.log"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("--class-weights none"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find(".cpp"), std::string::npos) << r.output;
}

TEST_F(AdaptCommand, SpatialPriorMethodsNeedAPrior) {
  std::string args = adapt_args("cbst-sp", "noprior");
  args.replace(args.find("--prior"), std::string("--prior ").size() + path("prior.safetensors").size(), "");
  const auto r = run_cbst(args, path("noprior.log"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("cbst priors"), std::string::npos) << r.output;
}

// --flip and --scales make the pseudo-labels; the rounds' evaluations score the image alone
// unless --eval-flip and --eval-scales say otherwise, so a run's last round is what `cbst eval`
// gives its final weights with its defaults. The evaluation's options change no weight.
TEST_F(AdaptCommand, FlipAndScalesLabelWhileTheEvaluationsHaveTheirOwnOptions) {
  auto one_round = [](const std::string& run) {
    std::string args = adapt_args("cbst", run);
    return args.replace(args.find(" --rounds 2 "), 12, " --rounds 1 ") + " --flip --scales 0.75,1";
  };
  auto r = run_cbst(one_round("tta_plain_eval"), path("tta_plain_eval.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json plain = weights::parse_json(read("tta_plain_eval/eval/final.json"));
  EXPECT_EQ(plain["scales"], nlohmann::json::array({1.0}));
  EXPECT_EQ(plain.value("flip", true), false);
  r = run_cbst("eval --data cityscapes=" + path("data/cityscapes") + ":val --checkpoint " +
               path("tta_plain_eval/checkpoints/final.safetensors") + " --json " + path("tta_plain_eval.json"),
               path("tta_plain_eval_cli.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(weights::parse_json(read("tta_plain_eval.json")).value("miou", -1.0), plain.value("miou", -2.0));

  r = run_cbst(one_round("tta_eval") + " --eval-flip --eval-scales 0.75,1", path("tta_eval.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json averaged = weights::parse_json(read("tta_eval/eval/final.json"));
  EXPECT_EQ(averaged["scales"], nlohmann::json::array({0.75, 1.0}));
  EXPECT_EQ(averaged.value("flip", false), true);
  EXPECT_NE(averaged.value("miou", -1.0), plain.value("miou", -1.0)) << "another evaluation, another score";
  EXPECT_EQ(read("tta_eval/rounds/1/thresholds.json"), read("tta_plain_eval/rounds/1/thresholds.json"));
  const auto a = weights::load_checkpoint(path("tta_plain_eval/checkpoints/final.safetensors"));
  const auto b = weights::load_checkpoint(path("tta_eval/checkpoints/final.safetensors"));
  for (auto& [name, t] : a) CBST_EXPECT_CLOSE(name, b.at(name), t, 0.0, 0.0);

  r = run_cbst(one_round("tta_bad") + " --eval-scales 1,,2", path("tta_bad.log"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--eval-scales"), std::string::npos) << r.output;
}

// The rounds' evaluation options may change when a run resumes, since they change no weight;
// the pseudo-labels' test-time options may not, since they make the labels the run trains on.
TEST_F(AdaptCommand, ResumeMayChangeTheEvaluationsOptionsButNotThePseudoLabels) {
  const std::string args = adapt_args("cbst", "resume_eval") + " --flip";
  auto r = run_cbst(args, path("resume_eval_killed.log"), "CBST_TEST_ABORT_AT_STEP=8");
  ASSERT_EQ(r.exit_code, 137) << r.output;
  r = run_cbst(adapt_args("cbst", "resume_eval") + " --resume", path("resume_eval_refused.log"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("cbst: error: --resume with other options than the run was started with (flip: true -> "
                          "false)"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(path("resume_eval/summary.json")));

  // Where the round's probabilities are cached changes no number either (on a CPU run both
  // are host memory).
  r = run_cbst(args + " --eval-flip --eval-scales 0.75,1 --prob-cache device --resume", path("resume_eval.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resume with a changed option: eval-flip: false -> true"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("resume with a changed option: prob-cache: host -> device"), std::string::npos) << r.output;
  const nlohmann::json final_eval = weights::parse_json(read("resume_eval/eval/final.json"));
  EXPECT_EQ(final_eval["scales"], nlohmann::json::array({0.75, 1.0}));
  EXPECT_EQ(final_eval.value("flip", false), true);
}

// --adabn: every round ends with the batch-norm statistics `cbst adabn` gives its weights on
// the target training images, and the round records say so. (small-fcn's dropout comes
// after its last batch norm, so the masks do not enter the statistics.) A run without it
// keeps the statistics of its training batches, which differ; a model without batch norm
// is refused.
TEST_F(AdaptCommand, AdabnLeavesEveryRoundWithTheTargetsStatistics) {
  auto r = run_cbst(adapt_args("cbst", "adabn") + " --adabn", path("adabn.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("before round 1: AdaBN,"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("round 2/2: AdaBN,"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("re-estimated on 8 target images"), std::string::npos) << r.output;
  const nlohmann::json summary = weights::parse_json(read("adabn/summary.json"));
  ASSERT_EQ(summary["rounds"].size(), 2u) << summary;
  EXPECT_TRUE(summary["rounds"][1].value("adabn", false)) << summary;
  r = run_cbst(adapt_args("cbst", "plain"), path("plain.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;

  // The final weights of each run, re-estimated by `cbst adabn` on the same images in the
  // same batches: the --adabn run's statistics come back bit for bit, the plain run's do not.
  int differing_plain = 0, buffers = 0;
  for (const std::string run : {"adabn", "plain"}) {
    const std::string final_ckpt = path(run + "/checkpoints/final.safetensors");
    const std::string again = path(run + "_again.safetensors");
    r = run_cbst("adabn --checkpoint " + final_ckpt + " --data cityscapes=" + path("data/cityscapes") +
                 ":train --batch 2 --out " + again, path(run + "_again.log"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto trained = weights::load_checkpoint(final_ckpt);
    const auto restat = weights::load_checkpoint(again);
    for (auto& [name, t] : trained) {
      if (!name.ends_with("running_mean") && !name.ends_with("running_var")) continue;
      if (run == "adabn") {
        CBST_EXPECT_CLOSE(name, restat.at(name), t, 0.0, 0.0);
        ++buffers;
      } else {
        if (restat.at(name).to_vector<float>() != t.to_vector<float>()) ++differing_plain;
      }
    }
  }
  EXPECT_GT(buffers, 0);
  EXPECT_GT(differing_plain, 0) << "without --adabn the statistics are the training batches'";

  r = run_cbst("adapt --source gta5=" + path("data/gta5") + " --target cityscapes=" + path("data/cityscapes") +
               " --model fcn8s-vgg16 --method cbst --rounds 1 --batch 2 --crop 32 --adabn --run " + path("adabn_fcn"),
               path("adabn_fcn.log"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output.rfind("cbst: error: --adabn re-estimates batch-norm statistics", 0), 0u) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_FALSE(fs::exists(path("adabn_fcn/summary.json")));
}

TEST_F(AdaptCommand, TargetJitterAugmentsThePseudoLabelledImagesToo) {
  // The photometric draws are keyed by the sample, so the source images are jittered alike in
  // the two jittered runs, and those can differ only by the target's crops.
  const std::string no_previews = " --previews 0";
  const std::string jitter = " --color-jitter 0.4,0.4,0.4,0.1";
  const std::vector<std::pair<std::string, std::string>> runs = {
      {"tj_plain", ""}, {"tj_flag", " --target-jitter"}, {"tj_source", jitter}, {"tj_both", jitter + " --target-jitter"}};
  std::map<std::string, weights::TensorMap> finals;
  for (const auto& [run, extra] : runs) {
    const auto r = run_cbst(adapt_args("cbst", run) + no_previews + extra, path(run + ".log"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    finals[run] = weights::load_checkpoint(path(run + "/checkpoints/final.safetensors"));
    const nlohmann::json summary = weights::parse_json(read(run + "/summary.json"));
    EXPECT_EQ(summary["rounds"][0].value("target_jitter", false), extra.ends_with("--target-jitter")) << summary;
  }
  int differing = 0;
  for (auto& [name, t] : finals["tj_plain"]) {
    // Without a jitter to apply, the flag changes nothing.
    CBST_EXPECT_CLOSE(name, finals["tj_flag"].at(name), t, 0.0, 0.0);
    if (t.dtype() == DType::f32 &&
        finals["tj_both"].at(name).to_vector<float>() != finals["tj_source"].at(name).to_vector<float>())
      ++differing;
  }
  EXPECT_GT(differing, 0) << "--target-jitter left the pseudo-labelled crops as they were";
}

// --label-oracle: round 1 chooses the same pixels with and without it (the same model labels
// the same images), and with it each chosen pixel carries its true label.
TEST_F(AdaptCommand, LabelOracleTrainsOnTheTrueLabelsOfThePixelsTheRuleChose) {
  auto one_round = [](const std::string& run) {
    std::string args = adapt_args("cbst", run);
    return args.replace(args.find(" --rounds 2 "), 12, " --rounds 1 ");
  };
  auto r = run_cbst(one_round("lo_plain"), path("lo_plain.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cbst(one_round("lo_true") + " --label-oracle", path("lo_true.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("training on their true labels (--label-oracle)"), std::string::npos) << r.output;
  const nlohmann::json plain = weights::parse_json(read("lo_plain/summary.json"))["rounds"][0];
  const nlohmann::json oracle = weights::parse_json(read("lo_true/summary.json"))["rounds"][0];
  EXPECT_TRUE(oracle.value("label_oracle", false)) << oracle;
  EXPECT_FALSE(plain.contains("label_oracle")) << plain;
  // The counts describe the rule's own labels, the same in both runs.
  EXPECT_EQ(oracle["pseudo_accuracy"], plain["pseudo_accuracy"]);
  EXPECT_EQ(oracle["pseudo_coverage"], plain["pseudo_coverage"]);

  const data::Dataset target = data::open_dataset("cityscapes=" + path("data/cityscapes"), {.split = "train"});
  const data::LabelMap map = target.label_map(data::ClassSpace::cityscapes19);
  int64_t labelled = 0, wrong = 0, mismatched = 0;
  for (size_t i = 0; i < target.size(); ++i) {
    const std::string stem = target.sample(i).stem;
    const data::Labels truth = map.apply(target.read_raw_labels(i));
    const data::RawLabels rule = data::read_label_values(path("lo_plain/rounds/1/pseudo/" + stem + ".png"));
    const data::RawLabels trained = data::read_label_values(path("lo_true/rounds/1/pseudo/" + stem + ".png"));
    ASSERT_EQ(rule.values.size(), truth.ids.size());
    ASSERT_EQ(trained.values.size(), truth.ids.size());
    for (size_t k = 0; k < truth.ids.size(); ++k) {
      const uint16_t expected = rule.values[k] == 255 ? 255 : truth.ids[k];
      mismatched += trained.values[k] != expected;
      labelled += rule.values[k] != 255;
      wrong += rule.values[k] != 255 && truth.ids[k] != 255 && rule.values[k] != truth.ids[k];
    }
  }
  EXPECT_EQ(mismatched, 0);
  EXPECT_GT(labelled, 0);
  EXPECT_GT(wrong, 0) << "the rule's labels were all right, so the two runs cannot be told apart";

  // Misuse: nothing to label, soft labels to replace, or no truth to take.
  r = run_cbst(adapt_args("source-only", "lo_source") + " --label-oracle", path("lo_source.log"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output.rfind("cbst: error: --label-oracle gives the pseudo-labelled pixels their true labels", 0), 0u)
      << r.output;
  r = run_cbst(adapt_args("cbst", "lo_lrent") + " --label-oracle --regularizer lrent", path("lo_lrent.log"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("LRENT trains on soft ones"), std::string::npos) << r.output;
  fs::create_directories(path("unlabelled"));
  fs::copy(path("data/cityscapes/leftImg8bit"), path("unlabelled/leftImg8bit"), fs::copy_options::recursive);
  std::string args = adapt_args("cbst", "lo_unlabelled");
  const std::string labelled_target = "--target cityscapes=" + path("data/cityscapes");
  args.replace(args.find(labelled_target), labelled_target.size(), "--target cityscapes=" + path("unlabelled"));
  r = run_cbst(args + " --label-oracle", path("lo_unlabelled.log"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--label-oracle needs the target's true labels"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  for (const char* run : {"lo_source", "lo_lrent", "lo_unlabelled"})
    EXPECT_FALSE(fs::exists(path(std::string(run) + "/summary.json"))) << run;
}

TEST_F(AdaptCommand, ADivergingLossStopsTheRunNamingTheStep) {
  const auto r = run_cbst("train --data gta5=" + path("data/gta5") + " --epochs 2 --batch 2 --crop 32 --lr 1e30 "
                          "--workers 1 --run " + path("nan"), path("nan.log"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("the loss became"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("at step"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("lower --lr"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(path("nan/checkpoints/final.safetensors")));
}

TEST_F(AdaptCommand, TrainResumesAfterItsLastEpoch) {
  auto r = run_cbst("train --data gta5=" + path("data/gta5") + " --epochs 2 --batch 2 --crop 32 --lr 0.05 "
                    "--workers 1 --run " + path("t_whole"), path("t1.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cbst("train --data gta5=" + path("data/gta5") + " --epochs 2 --batch 2 --crop 32 --lr 0.05 "
               "--workers 1 --run " + path("t_killed"), path("t2.log"), "CBST_TEST_ABORT_AT_STEP=5");
  ASSERT_EQ(r.exit_code, 137) << r.output;
  r = run_cbst("train --data gta5=" + path("data/gta5") + " --epochs 2 --batch 2 --crop 32 --lr 0.05 "
               "--workers 1 --run " + path("t_killed") + " --resume", path("t3.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto a = weights::load_checkpoint(path("t_whole/checkpoints/final.safetensors"));
  const auto b = weights::load_checkpoint(path("t_killed/checkpoints/final.safetensors"));
  for (auto& [name, t] : a) CBST_EXPECT_CLOSE(name, b.at(name), t, 0.0, 0.0);
}

}  // namespace
}  // namespace cbst
