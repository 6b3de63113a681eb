// The run folder of `cbst train` and `cbst adapt` through the program, as the README lays it
// out: the same checkpoint names, `latest`, best.safetensors by val mIoU, summary.json,
// eval/final.json (what was evaluated, the confusion matrix), report.html, epochs and rounds
// counted from 1 everywhere, and log lines and metrics.jsonl records with a timestamp, data
// and step time, learning rate, memory and the run's ETA every --log-every steps.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/tools/cli_runner.h"
#include "weights/json.h"
#include "weights/load_weights.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;
using testing::read_text;
using testing::run_cbst;
using nlohmann::json;

json read_json(const fs::path& p) { return weights::parse_json(read_text(p)); }

std::vector<json> read_records(const fs::path& metrics) {
  std::vector<json> out;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) out.push_back(weights::parse_json(line));  // every line parses
  return out;
}

bool is_iso8601_utc(const std::string& s) {
  static const std::regex kIso(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z)");
  return std::regex_match(s, kIso);
}

std::string crc32_of(const fs::path& p) {
  const std::string bytes = read_text(p);
  char hex[16];
  std::snprintf(hex, sizeof hex, "%08lx",
                crc32_z(0, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()) & 0xffffffffUL);
  return hex;
}

// A step record of metrics.jsonl carries every field the README lists.
void expect_step_record(const json& r, bool adapt) {
  EXPECT_TRUE(r.contains("time") && is_iso8601_utc(r["time"].get<std::string>())) << r;
  if (adapt) {
    EXPECT_GE(r.value("round", 0), 1) << r;
  } else {
    EXPECT_FALSE(r.contains("round")) << r;
  }
  EXPECT_GE(r.value("epoch", 0), 1) << r;
  EXPECT_GE(r.value("step", 0), 1) << r;
  for (const char* key : {"loss", "lr", "data_time", "step_time", "peak_rss_mib"})
    EXPECT_TRUE(r.contains(key) && r[key].is_number()) << key << " in " << r;
  EXPECT_GT(r.value("peak_rss_mib", 0.0), 0.0) << r;
  EXPECT_GE(r.value("step_time", -1.0), r.value("data_time", 0.0)) << "the step time includes the data time";
  EXPECT_TRUE(r.contains("eta_seconds")) << r;
  EXPECT_FALSE(r.contains("cuda_peak_mib")) << "a CPU run has no device memory";
}

// The eval JSON holds what was evaluated and the confusion matrix.
void expect_eval_record(const json& e, const std::string& data, int64_t classes) {
  EXPECT_FALSE(e.value("cbst_version", "").empty()) << e;
  EXPECT_TRUE(is_iso8601_utc(e.value("time", ""))) << e;
  EXPECT_EQ(e.value("data", ""), data);
  EXPECT_EQ(e.value("split", ""), "val");
  EXPECT_EQ(e.value("protocol", ""), "19");
  EXPECT_EQ(e.value("model", ""), "small-fcn");
  EXPECT_EQ(e["scales"], json::array({1.0}));
  EXPECT_EQ(e.value("flip", true), false);
  ASSERT_TRUE(e.contains("confusion_matrix") && e["confusion_matrix"].size() == size_t(classes)) << e;
  int64_t total = 0;
  for (size_t g = 0; g < size_t(classes); ++g) {
    ASSERT_EQ(e["confusion_matrix"][g].size(), size_t(classes) + 1) << "the classes and 'no class of the protocol'";
    int64_t row = 0;
    for (const json& v : e["confusion_matrix"][g]) row += v.get<int64_t>();
    EXPECT_EQ(row, e["classes"][g].value("ground_truth_pixels", int64_t(-1))) << g;
    total += row;
  }
  EXPECT_EQ(total, e.value("valid_pixels", int64_t(-1)));
}

// A checkpoint cbst evaluates: loads through the program.
void expect_loads(const fs::path& checkpoint, const std::string& data, const fs::path& log) {
  const auto r = run_cbst("eval --data " + data + " --split val --checkpoint " + checkpoint.string(), log.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

class RunFolder : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("cbst_run_folder_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    const auto r = run_cbst("synth --out " + path("data") + " --size 32x64 --source 8 --target-train 8 --target-val 4 "
                            "--seed 7", path("synth.log"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string path(const std::string& rel) { return (dir_ / rel).string(); }
  static std::string target() { return "cityscapes=" + path("data/cityscapes"); }
  // 8 source images in batches of 2: 4 steps an epoch.
  static std::string train_args(const std::string& run, int log_every = 2, int eval_every = 1) {
    return "train --data gta5=" + path("data/gta5") + " --eval " + target() + ":val --model small-fcn --epochs 2 " +
           "--eval-every " + std::to_string(eval_every) + " --batch 2 --crop 32 --lr 0.05 --workers 1 --log-every " +
           std::to_string(log_every) + " --run " + path(run);
  }
  static std::string adapt_args(const std::string& init, const std::string& run) {
    return "adapt --source gta5=" + path("data/gta5") + " --target " + target() + " --eval " + target() + ":val " +
           "--model small-fcn --init " + path(init) + " --method cbst --rounds 2 --epochs-per-round 1 --batch 2 " +
           "--crop 32 --lr 0.02 --source-portion 0.5,0.25,1.0 --workers 1 --log-every 3 --run " + path(run);
  }
  static fs::path dir_;
};
fs::path RunFolder::dir_;

TEST_F(RunFolder, TrainWritesBestSummaryFinalEvalReportAndTimedRecords) {
  const auto r = run_cbst(train_args("train"), path("train.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path run = path("train");
  for (const char* f : {"config.toml", "log.txt", "metrics.jsonl", "summary.json", "report.html", "eval/epoch_1.json",
                        "eval/epoch_2.json", "eval/final.json", "checkpoints/latest", "checkpoints/epoch_2.safetensors",
                        "checkpoints/final.safetensors", "checkpoints/best.safetensors"})
    EXPECT_TRUE(fs::exists(run / f)) << f;
  EXPECT_FALSE(fs::exists(run / "eval/epoch_0.json")) << "epochs count from 1";
  EXPECT_FALSE(fs::exists(run / "checkpoints/epoch_1.safetensors")) << "only the newest resumable checkpoint stays";
  EXPECT_EQ(read_text(run / "checkpoints/latest"), "epoch_2.safetensors\n");

  // summary.json: both epochs with their mIoU, the best one (the first of the highest), the final.
  const json summary = read_json(run / "summary.json");
  EXPECT_EQ(summary.value("command", ""), "train");
  ASSERT_EQ(summary["epochs"].size(), 2u) << summary;
  const double m1 = summary["epochs"][0].value("miou", -1.0), m2 = summary["epochs"][1].value("miou", -1.0);
  EXPECT_EQ(summary["epochs"][0].value("epoch", 0), 1);
  EXPECT_EQ(summary["epochs"][1].value("epoch", 0), 2);
  ASSERT_TRUE(summary["best"].is_object()) << summary;
  EXPECT_EQ(summary["best"].value("epoch", 0), m2 > m1 ? 2 : 1) << summary;
  EXPECT_EQ(summary["best"].value("miou", -1.0), std::max(m1, m2));
  EXPECT_EQ(summary["best"].value("checkpoint", ""), "checkpoints/best.safetensors");
  EXPECT_EQ(summary["final"].value("epoch", 0), 2);
  EXPECT_EQ(summary["final"].value("miou", -1.0), m2);

  // best.safetensors: weights only, and the best epoch's.
  const auto best = weights::load_checkpoint((run / "checkpoints/best.safetensors").string());
  for (auto& [name, t] : best) EXPECT_NE(name.rfind("optimizer.", 0), 0u) << name;
  EXPECT_EQ(best.metadata.at("model"), "small-fcn");
  expect_loads(run / "checkpoints/best.safetensors", target(), path("best_eval.log"));
  EXPECT_NE(read_text(run / "log.txt").find("best so far: mIoU"), std::string::npos);

  // eval/final.json names the final weights (size and CRC-32 of the file) and scores like epoch 2.
  const json final_eval = read_json(run / "eval/final.json");
  expect_eval_record(final_eval, target(), 19);
  EXPECT_EQ(final_eval.value("epoch", 0), 2);
  EXPECT_EQ(final_eval.value("miou", -1.0), m2);
  const json& ck = final_eval["checkpoint"];
  ASSERT_TRUE(ck.is_object()) << final_eval;
  EXPECT_EQ(fs::path(ck.value("path", "")), fs::absolute(run / "checkpoints/final.safetensors").lexically_normal());
  EXPECT_EQ(ck.value("bytes", int64_t(0)), int64_t(fs::file_size(run / "checkpoints/final.safetensors")));
  EXPECT_EQ(ck.value("crc32", ""), crc32_of(run / "checkpoints/final.safetensors"));
  EXPECT_TRUE(is_iso8601_utc(ck.value("modified", ""))) << ck;
  EXPECT_TRUE(read_json(run / "eval/epoch_1.json")["checkpoint"].is_null()) << "weights of a running run: no file";

  // metrics.jsonl: with --log-every 2, two step records per epoch of 4 steps, then the epoch's.
  std::vector<int64_t> steps, epochs;
  for (const json& rec : read_records(run / "metrics.jsonl")) {
    if (rec.contains("event")) {
      EXPECT_EQ(rec.value("event", ""), "epoch");
      EXPECT_TRUE(is_iso8601_utc(rec.value("time", ""))) << rec;
      epochs.push_back(rec.value("epoch", int64_t(0)));
      continue;
    }
    expect_step_record(rec, false);
    steps.push_back(rec.value("step", int64_t(0)));
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{2, 4, 6, 8}));
  EXPECT_EQ(epochs, (std::vector<int64_t>{1, 2}));

  // log.txt: every line after a timestamp; step lines with times, memory and the run's ETA;
  // evaluation with its own progress line; epochs numbered from 1.
  const std::string log = read_text(run / "log.txt");
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    const bool table = line.empty() || line[0] == '|' || line[0] == '+' || line[0] == '*' ||
                       line.rfind("mIoU", 0) == 0 || line.rfind("protocol", 0) == 0;  // the IoU table's lines
    if (!table) {
      EXPECT_TRUE(is_iso8601_utc(line.substr(0, line.find(' ')))) << line;
    }
  }
  for (const char* part : {"epoch 1/2 step 2/8: loss ", ", lr ", " ms, step ", "peak RSS ", "run ETA ",
                           "epoch 2/2 step 8/8", "epoch 1/2 eval done: 4 in", "epoch 2/2: mIoU "})
    EXPECT_NE(log.find(part), std::string::npos) << part << "\n" << log;
  EXPECT_EQ(log.find("epoch 0"), std::string::npos) << log;

  // report.html: self-contained, with the loss curve and mIoU per epoch.
  const std::string html = read_text(run / "report.html");
  for (const char* part : {"<svg", "Training loss", "Validation mIoU", "epoch 2", "[train]"})
    EXPECT_NE(html.find(part), std::string::npos) << part;
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg")) << "nothing fetched from the network";
}

// The JSON header of a safetensors file (8-byte little-endian length, then the header).
std::string safetensors_header(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  uint8_t len[8] = {};
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  std::string header(size_t(n), '\0');
  in.read(header.data(), std::streamsize(n));
  return header;
}

// bf16 mixed precision through the program: the run records it (config, log, summary, eval
// records), its checkpoints hold f32 master weights, and they evaluate.
TEST_F(RunFolder, TrainInBf16RecordsThePrecisionAndWritesF32Checkpoints) {
  const auto r = run_cbst(train_args("bf16", 2, 0) + " --precision bf16", path("bf16.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path run = path("bf16");
  EXPECT_TRUE(std::regex_search(read_text(run / "config.toml"), std::regex("precision *= *\"bf16\"")))
      << read_text(run / "config.toml");
  EXPECT_NE(read_text(run / "log.txt").find("bf16 mixed precision"), std::string::npos);
  EXPECT_EQ(read_json(run / "summary.json").value("precision", ""), "bf16");
  EXPECT_EQ(read_json(run / "eval/final.json").value("precision", ""), "bf16");
  int64_t losses = 0;
  for (const json& rec : read_records(run / "metrics.jsonl")) {
    if (!rec.contains("loss")) continue;
    EXPECT_TRUE(std::isfinite(rec["loss"].get<double>())) << rec;
    ++losses;
  }
  EXPECT_GT(losses, 0) << "the run logged its losses";
  const std::string header = safetensors_header(run / "checkpoints/final.safetensors");
  EXPECT_NE(header.find("\"F32\""), std::string::npos) << header.substr(0, 300);
  EXPECT_EQ(header.find("BF16"), std::string::npos) << "checkpoints hold the f32 master weights";
  expect_loads(run / "checkpoints/final.safetensors", target(), path("bf16_eval.log"));
  // cbst eval runs f32 unless told, and records what it ran.
  const auto e = run_cbst("eval --data " + target() + " --split val --checkpoint " +
                              (run / "checkpoints/final.safetensors").string() + " --precision bf16 --json " +
                              path("bf16_eval.json"),
                          path("bf16_eval2.log"));
  ASSERT_EQ(e.exit_code, 0) << e.output;
  EXPECT_EQ(read_json(path("bf16_eval.json")).value("precision", ""), "bf16");
}

TEST_F(RunFolder, TrainKeepsEveryCheckpointWhenAskedAndLogsEveryStep) {
  const auto r = run_cbst(train_args("keep", 1) + " --keep-checkpoints", path("keep.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(path("keep/checkpoints/epoch_1.safetensors")));
  EXPECT_TRUE(fs::exists(path("keep/checkpoints/epoch_2.safetensors")));
  int64_t step_records = 0;
  for (const json& rec : read_records(path("keep/metrics.jsonl"))) step_records += !rec.contains("event");
  EXPECT_EQ(step_records, 8) << "--log-every 1: a record per step";
}

// Evaluating between epochs once replaced the model's parameters (Module::to clones them even
// on their own device), and every later step went to tensors the model no longer used.
TEST_F(RunFolder, EvaluatingBetweenEpochsLeavesTheTrainingAsItIs) {
  ASSERT_EQ(run_cbst(train_args("eval_each", 2, 1), path("eval_each.log")).exit_code, 0);
  ASSERT_EQ(run_cbst(train_args("eval_last", 2, 0), path("eval_last.log")).exit_code, 0);
  EXPECT_TRUE(read_text(path("eval_each/checkpoints/final.safetensors")) ==
              read_text(path("eval_last/checkpoints/final.safetensors")))
      << "the same final weights with and without an evaluation after epoch 1";
}

TEST_F(RunFolder, ResumedTrainRunWritesTheSameSummaryAndBest) {
  ASSERT_EQ(run_cbst(train_args("whole"), path("whole.log")).exit_code, 0);
  // Step 5 is inside epoch 2: epoch 1 and its evaluation are done.
  auto r = run_cbst(train_args("killed"), path("killed.log"), "CBST_TEST_ABORT_AT_STEP=5");
  ASSERT_EQ(r.exit_code, 137) << r.output;
  r = run_cbst(train_args("killed") + " --resume", path("resumed.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resume: after epoch 1"), std::string::npos) << r.output;
  EXPECT_EQ(read_text(path("whole/summary.json")), read_text(path("killed/summary.json")));
  EXPECT_TRUE(read_text(path("whole/checkpoints/best.safetensors")) ==
              read_text(path("killed/checkpoints/best.safetensors")))
      << "the same best weights";
}

TEST_F(RunFolder, AdaptWritesTheSameLayoutWithRoundsFromOne) {
  ASSERT_EQ(run_cbst("train --data gta5=" + path("data/gta5") + " --model small-fcn --epochs 1 --batch 2 --crop 32 "
                     "--workers 1 --run " + path("source"), path("source.log")).exit_code, 0);
  const auto r = run_cbst(adapt_args("source/checkpoints/final.safetensors", "adapt"), path("adapt.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path run = path("adapt");
  for (const char* f : {"summary.json", "report.html", "eval/initial.json", "eval/round_1.json", "eval/round_2.json",
                        "eval/final.json", "rounds/1/thresholds.json", "rounds/2/summary.json",
                        "checkpoints/round_2.safetensors", "checkpoints/final.safetensors",
                        "checkpoints/best.safetensors"})
    EXPECT_TRUE(fs::exists(run / f)) << f;
  EXPECT_FALSE(fs::exists(run / "rounds/0")) << "round 0 is the starting model: no pseudo-labels";
  EXPECT_EQ(read_text(run / "checkpoints/latest"), "round_2.safetensors\n");

  const json summary = read_json(run / "summary.json");
  EXPECT_EQ(summary.value("command", ""), "adapt");
  ASSERT_TRUE(summary["initial"].is_object()) << summary;
  EXPECT_EQ(summary["initial"].value("round", -1), 0);
  ASSERT_EQ(summary["rounds"].size(), 2u);
  const double m1 = summary["rounds"][0].value("miou", -1.0), m2 = summary["rounds"][1].value("miou", -1.0);
  EXPECT_EQ(summary["best"].value("round", 0), m2 > m1 ? 2 : 1) << summary;
  EXPECT_EQ(summary["best"].value("miou", -1.0), std::max(m1, m2));
  EXPECT_EQ(summary["final"].value("round", 0), 2);
  expect_loads(run / "checkpoints/best.safetensors", target(), path("adapt_best_eval.log"));

  const json initial = read_json(run / "eval/initial.json");
  EXPECT_EQ(initial.value("round", -1), 0);
  EXPECT_EQ(initial["checkpoint"].value("crc32", ""), crc32_of(path("source/checkpoints/final.safetensors")))
      << "round 0 names the weights the run started from";
  const json final_eval = read_json(run / "eval/final.json");
  expect_eval_record(final_eval, target(), 19);
  EXPECT_EQ(final_eval.value("round", 0), 2);
  EXPECT_EQ(final_eval["checkpoint"].value("crc32", ""), crc32_of(run / "checkpoints/final.safetensors"));

  // Rounds of 4 + 8 and 6 + 8 images in batches of 2: 6 and 7 steps, a record every 3 and
  // at each epoch's end.
  std::vector<std::pair<int64_t, int64_t>> steps;  // (round, step)
  std::vector<int64_t> rounds;
  for (const json& rec : read_records(run / "metrics.jsonl")) {
    if (rec.value("event", "") == "round") rounds.push_back(rec.value("round", int64_t(-1)));
    if (rec.contains("event")) continue;
    expect_step_record(rec, true);
    EXPECT_EQ(rec.value("epoch", 0), 1) << "the epoch within its round";
    steps.emplace_back(rec.value("round", int64_t(0)), rec.value("step", int64_t(0)));
  }
  EXPECT_EQ(rounds, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(steps, (std::vector<std::pair<int64_t, int64_t>>{{1, 3}, {1, 6}, {2, 9}, {2, 12}, {2, 13}}));

  const std::string log = read_text(run / "log.txt");
  for (const char* part : {"round 0 (initial model): mIoU ", "round 1/2: portion 0.20", "round 1/2 epoch 1/1 step 3/13",
                           "round 2/2 eval done: 4 in", "round 2/2: mIoU ", "run ETA "})
    EXPECT_NE(log.find(part), std::string::npos) << part << "\n" << log;

  // report.html: loss, mIoU per round from the start, pseudo-label statistics and previews.
  const std::string html = read_text(run / "report.html");
  for (const char* part : {"Training loss", "Validation mIoU", "Pseudo-labels", "r2 cov", "class thresholds",
                           "Pseudo-labels of round 2", "data:image/png;base64,", "0 (start)"})
    EXPECT_NE(html.find(part), std::string::npos) << part;
}

TEST_F(RunFolder, EvalJsonRecordsWhatWasEvaluated) {
  ASSERT_EQ(run_cbst("train --data gta5=" + path("data/gta5") + " --model small-fcn --epochs 1 --batch 2 --crop 32 "
                     "--workers 1 --run " + path("eval_source"), path("eval_source.log")).exit_code, 0);
  const fs::path ckpt = path("eval_source/checkpoints/final.safetensors");
  auto r = run_cbst("eval --data " + target() + " --split val --checkpoint " + ckpt.string() +
                    " --scales 0.5,1 --flip --json " + path("eval.json") + " --save-predictions " + path("preds"),
                    path("eval.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  json e = read_json(path("eval.json"));
  EXPECT_EQ(e["scales"], json::array({0.5, 1.0}));
  EXPECT_EQ(e.value("flip", false), true);
  e["scales"] = json::array({1.0});
  e["flip"] = false;
  expect_eval_record(e, target(), 19);
  EXPECT_EQ(e["checkpoint"].value("crc32", ""), crc32_of(ckpt));
  EXPECT_FALSE(e.value("input_convention", "").empty()) << "the checkpoint records it";

  // The saved predictions scored again: the same matrix, and the folder named instead.
  r = run_cbst("eval --data " + target() + " --split val --predictions " + path("preds") + " --json " +
               path("again.json"), path("again.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json again = read_json(path("again.json"));
  EXPECT_EQ(again["confusion_matrix"], read_json(path("eval.json"))["confusion_matrix"]);
  EXPECT_TRUE(again["checkpoint"].is_null());
  EXPECT_EQ(again.value("predictions", ""), path("preds"));
  EXPECT_EQ(again.value("pred_format", ""), "labelids");
  EXPECT_FALSE(again.contains("scales")) << "no inference options for a folder of predictions";
}

}  // namespace
}  // namespace cbst
