// SIGKILL at arbitrary moments of a tiny `cbst train` and `cbst adapt`, then --resume, until
// the run finishes (issue 11, defect 7). After every kill the run folder must be consistent:
// every checkpoint loads, `latest` names one, metrics.jsonl parses and holds no record
// twice; at the end every epoch or round is recorded exactly once, summary.json parses,
// no temporary file is left, and the final weights equal an uninterrupted run's.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "tests/support/expect_close.h"
#include "tests/tools/cli_runner.h"
#include "weights/json.h"
#include "weights/load_weights.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;
using testing::read_text;
using testing::run_cbst;

// Runs `cbst args` (output appended to `log`) and sends SIGKILL after `delay` unless it has
// ended by then. Returns the exit code, or -1 when it was killed.
int run_and_kill(const std::string& args, const std::string& log, std::chrono::milliseconds delay) {
  const std::string cmd = "exec " + testing::cbst_binary().string() + " " + args + " >> " + log + " 2>&1";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + delay;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The records of metrics.jsonl as (event, index) pairs; every line must parse.
std::vector<std::pair<std::string, int64_t>> metric_records(const fs::path& file, const char* index_key) {
  std::vector<std::pair<std::string, int64_t>> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json v = weights::parse_json(line);
    if (v.contains("event") && v.contains(index_key) && v[index_key].is_number_unsigned())
      out.emplace_back(v["event"].get<std::string>(), v[index_key].get<int64_t>());
  }
  return out;
}

void expect_consistent(const fs::path& run, const char* event, const char* index_key) {
  // A kill before the run made its folders leaves nothing to check (the resume starts anew).
  if (!fs::is_directory(run / "checkpoints")) return;
  for (const auto& e : fs::directory_iterator(run / "checkpoints", fs::directory_options::skip_permission_denied)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 12 && name.substr(name.size() - 12) == ".safetensors" && name[0] != '.') {
      EXPECT_NO_THROW(weights::load_checkpoint(e.path().string())) << e.path();
    }
  }
  if (fs::exists(run / "checkpoints" / "latest")) {
    std::string latest = read_text(run / "checkpoints" / "latest");
    latest = latest.substr(0, latest.find('\n'));
    EXPECT_TRUE(fs::exists(run / "checkpoints" / latest)) << "latest names " << latest;
  }
  std::set<int64_t> seen;
  for (const auto& [ev, i] : metric_records(run / "metrics.jsonl", index_key))
    if (ev == event) {
      EXPECT_TRUE(seen.insert(i).second) << event << " " << i << " recorded twice";
    }
}

class KillResumeSlow : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("cbst_kill_resume_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    auto r = run_cbst("synth --out " + path("data") + " --size 32x64 --source 8 --target-train 8 --target-val 4 --seed 5",
                      path("synth.log"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string path(const std::string& rel) { return (dir_ / rel).string(); }

  // Kills runs of `args` at pseudo-random moments and resumes until one finishes; checks the
  // folder after every kill. The moments are fractions (a fixed sequence) of `whole`, the
  // uninterrupted run's duration, so that they fall inside the run on any machine; the
  // first is 30 % of it. Returns how many kills landed.
  static int kill_until_done(const std::string& args, const std::string& run, const char* event, const char* index_key,
                             std::chrono::milliseconds whole) {
    std::mt19937 rng(11);
    std::uniform_real_distribution<double> fraction(0.02, 0.9);
    int kills = 0;
    for (int attempt = 0; attempt < 40; ++attempt) {
      const bool resume = fs::exists(path(run + "/checkpoints/latest"));
      const double f = attempt == 0 ? 0.3 : fraction(rng);
      const auto delay = attempt < 30 ? std::chrono::milliseconds(int64_t(f * double(whole.count())))
                                      : std::chrono::milliseconds(3'600'000);
      const int code = run_and_kill(args + " --run " + path(run) + (resume ? " --resume" : ""), path(run + ".log"), delay);
      if (code == 0 && kills == 0 && attempt < 20) {
        // Finished before the first kill (this run was faster than the timed one, e.g. the
        // machine got quieter): start over with the moments scaled down.
        fs::remove_all(path(run));
        whole /= 2;
        continue;
      }
      if (code == 0) return kills;
      EXPECT_EQ(code, -1) << "exited by itself with " << code << "; see " << path(run + ".log");
      if (code != -1) return kills;
      ++kills;
      expect_consistent(path(run), event, index_key);
    }
    ADD_FAILURE() << "the run never finished";
    return kills;
  }

  static void expect_same_final(const std::string& a, const std::string& b) {
    const auto x = weights::load_checkpoint(path(a + "/checkpoints/final.safetensors"));
    const auto y = weights::load_checkpoint(path(b + "/checkpoints/final.safetensors"));
    ASSERT_EQ(x.size(), y.size());
    for (auto& [name, t] : x) CBST_EXPECT_CLOSE(name, y.at(name), t, 0.0, 0.0);  // resume is bit-exact
  }

  static void expect_no_temporaries(const std::string& run) {
    for (const auto& e : fs::recursive_directory_iterator(path(run)))
      EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }

  // Runs to the end and returns how long it took.
  static std::chrono::milliseconds timed_run(const std::string& args, const std::string& log) {
    const auto start = std::chrono::steady_clock::now();
    const auto r = run_cbst(args, log);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  }

  static fs::path dir_;
};
fs::path KillResumeSlow::dir_;

TEST_F(KillResumeSlow, TrainKilledAnywhereResumesToTheUninterruptedWeights) {
  const std::string args = "train --data gta5=" + path("data/gta5") +
                           " --model small-fcn --epochs 4 --batch 2 --crop 32 --lr 0.05 --workers 1";
  const auto whole = timed_run(args + " --run " + path("train_whole"), path("train_whole.log"));
  const int kills = kill_until_done(args, "train_killed", "epoch", "epoch", whole);
  std::cout << "train: " << kills << " kills\n";
  EXPECT_GT(kills, 0) << "no kill landed inside the run";
  std::set<int64_t> epochs;
  for (const auto& [ev, i] : metric_records(path("train_killed/metrics.jsonl"), "epoch"))
    if (ev == "epoch") {
      EXPECT_TRUE(epochs.insert(i).second);
    }
  EXPECT_EQ(epochs, (std::set<int64_t>{1, 2, 3, 4}));  // counted from 1
  expect_no_temporaries("train_killed");
  expect_same_final("train_whole", "train_killed");
}

TEST_F(KillResumeSlow, AdaptKilledAnywhereResumesToTheUninterruptedRun) {
  ASSERT_EQ(run_cbst("train --data gta5=" + path("data/gta5") + " --model small-fcn --epochs 1 --batch 2 --crop 32 "
                     "--lr 0.05 --workers 1 --run " + path("source"), path("source.log")).exit_code, 0);
  const std::string args = "adapt --source gta5=" + path("data/gta5") + " --target cityscapes=" + path("data/cityscapes") +
                           " --eval cityscapes=" + path("data/cityscapes") + ":val --model small-fcn --init " +
                           path("source/checkpoints/final.safetensors") + " --method cbst --rounds 3 " +
                           "--epochs-per-round 1 --batch 2 --crop 32 --lr 0.02 --workers 1";
  const auto whole = timed_run(args + " --run " + path("adapt_whole"), path("adapt_whole.log"));
  const int kills = kill_until_done(args, "adapt_killed", "round", "round", whole);
  std::cout << "adapt: " << kills << " kills\n";
  EXPECT_GT(kills, 0) << "no kill landed inside the run";
  std::set<int64_t> rounds;
  for (const auto& [ev, i] : metric_records(path("adapt_killed/metrics.jsonl"), "round"))
    if (ev == "round") {
      EXPECT_TRUE(rounds.insert(i).second);
    }
  EXPECT_EQ(rounds, (std::set<int64_t>{1, 2, 3}));  // counted from 1
  const nlohmann::json summary = weights::parse_json(read_text(path("adapt_killed/summary.json")));
  ASSERT_TRUE(summary.contains("rounds"));
  EXPECT_EQ(summary["rounds"].size(), 3u);
  EXPECT_EQ(read_text(path("adapt_whole/summary.json")), read_text(path("adapt_killed/summary.json")));
  expect_no_temporaries("adapt_killed");
  expect_same_final("adapt_whole", "adapt_killed");
}

}  // namespace
}  // namespace cbst
