// Data-parallel `cbst train` and `cbst adapt` on 2 MPI ranks (localhost, CPU) against one
// process with the same global batch, on a tiny generated benchmark. Skipped when cbst was
// built without MPI.
//
// What must hold:
//   - train: 2 ranks × --batch 1 end with the weights (and BN running statistics) of 1 process
//     × --batch 2, to float tolerance: the ranks see the same samples, augmentation and
//     dropout masks, with batch-norm statistics synchronised and the loss normalised over the
//     global batch, so only the order of floating-point sums differs (per rank then across
//     ranks, against one pass);
//   - adapt: round 1 labels the target with the same (initial) weights on both sides, split
//     3 + 4 images across the ranks: its thresholds, pool sizes, coverage and every
//     pseudo-label file are identical, byte for byte;
//   - rank 0 alone prints and writes the run folder;
//   - overlapping the gradient all-reduce with backward (the default) changes no bit of the
//     trained weights against --no-overlap-allreduce.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "engine/dist.h"
#include "tests/support/expect_close.h"
#include "tests/tools/cli_runner.h"
#include "weights/load_weights.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;
using testing::run_cbst;

// 2 ranks of `cbst args` under the MPI launcher; OpenMPI may then run as root (CI containers)
// and start 2 ranks on fewer cores. One OpenMP thread per rank, and the same in the
// single-process runs, so that both sides use the same kernels' thread layout.
testing::CliResult run_cbst_on_2_ranks(const std::string& args, const std::string& log) {
  const std::string env = "OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                          "OMPI_MCA_rmaps_base_oversubscribe=1";
  return run_cbst(args, log, env + " " + CBST_MPIEXEC + " -np 2");
}

std::string read(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Every tensor of two checkpoints: the same names, values within `tol`.
void expect_same_weights(const std::string& a, const std::string& b, testing::Tolerance tol) {
  const weights::TensorMap x = weights::load_checkpoint(a), y = weights::load_checkpoint(b);
  ASSERT_EQ(x.size(), y.size());
  for (const auto& [name, t] : x) EXPECT_TRUE(testing::close_result(name, y.at(name), t, tol));
}

class MpiDataParallel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!dist::mpi_built()) return;
    dir_ = fs::temp_directory_path() / ("cbst_data_parallel_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    auto r = run_cbst("synth --out " + path("data") + " --size 32x64 --source 8 --target-train 7 --target-val 2 --seed 5",
                      path("synth.log"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void SetUp() override {
    if (!dist::mpi_built()) GTEST_SKIP() << "cbst was built without MPI (CBST_MPI; install libopenmpi-dev)";
  }

  static std::string path(const std::string& rel) { return (dir_ / rel).string(); }
  // small-fcn has batch norm (synchronised across ranks) and dropout (per-slice masks).
  static std::string train_args(int batch, const std::string& run) {
    return "train --data gta5=" + path("data/gta5") + " --model small-fcn --epochs 2 --batch " +
           std::to_string(batch) + " --crop 32 --lr 0.05 --workers 1 --seed 1 --run " + path(run);
  }
  static std::string adapt_args(int batch, const std::string& run) {
    return "adapt --source gta5=" + path("data/gta5") + " --target cityscapes=" + path("data/cityscapes") +
           " --model small-fcn --init " + path("single/checkpoints/final.safetensors") +
           " --method cbst --rounds 1 --epochs-per-round 1 --batch " + std::to_string(batch) +
           " --crop 32 --lr 0.02 --source-portion 0.5,0.25,1.0 --workers 1 --log-every 1 --run " + path(run);
  }

  static fs::path dir_;
};
fs::path MpiDataParallel::dir_;

// The float tolerance of the weight comparisons. The two runs differ only in the order of
// f32 sums: a parameter's gradient is one pass over both samples against a sum per rank then
// across ranks, and the batch-norm statistics likewise (the single process accumulates in f64
// per channel, the ranks exchange f32 partial sums as f64). Each such difference is an f32
// rounding (~6e-8 relative) per step, and 8 (train) or 5 (adapt) SGD steps carry them forward:
// measured, the largest difference is 4.8e-7 (train: running variances of magnitude ~2; seeds
// 1, 2, 3 at this learning rate, and seed 4 at 0.02, 0.04, 0.06) and 3e-8 (adapt). The
// tolerance, 1e-5 + 1e-4·|w|, leaves a margin of 20 and more for other compilers and BLAS
// builds, and is far below what a real mistake does: averaging the ranks' mean losses instead
// of normalising over the global batch moved weights by 9e-3, batch-norm statistics of one
// rank's samples by 0.27 (both measured with this test's command lines).
// One caveat, met while choosing the seed: a run can sit on a subgradient tie (a ReLU or
// max-pool input exactly at its kink); seed 4 at lr 0.05 does, and there a single process
// whose learning rate is changed by 1e-6 relative differs from it by 4e-4, as the 2-rank run
// does. That is the tie, not the data parallelism; the seed here has none.
constexpr testing::Tolerance kWeights{1e-5, 1e-4};

TEST_F(MpiDataParallel, TwoRanksTrainTheWeightsOfOneProcessWithTheGlobalBatch) {
  auto r = run_cbst(train_args(2, "single"), path("single.log"), "OMP_NUM_THREADS=1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cbst_on_2_ranks(train_args(1, "ranks"), path("ranks.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_weights(path("single/checkpoints/final.safetensors"), path("ranks/checkpoints/final.safetensors"),
                      kWeights);
  // Rank 0 alone prints and logs: each line once, and one record per epoch.
  EXPECT_EQ(count(r.output, "cbst train: done"), 1u) << r.output;
  EXPECT_EQ(count(read(path("ranks/log.txt")), "cbst train: done"), 1u);
  EXPECT_EQ(count(read(path("ranks/metrics.jsonl")), "\"event\":\"epoch\""),
            count(read(path("single/metrics.jsonl")), "\"event\":\"epoch\""));
  EXPECT_EQ(count(read(path("ranks/metrics.jsonl")), "\"event\":\"epoch\""), 2u);
}

TEST_F(MpiDataParallel, TwoRanksTrainTheSameBitsWithOrWithoutOverlappedAllReduce) {
  auto r = run_cbst_on_2_ranks(train_args(1, "overlap"), path("overlap.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cbst_on_2_ranks(train_args(1, "no_overlap") + " --no-overlap-allreduce", path("no_overlap.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The same collectives on the same buffers, started during backward or after it.
  expect_same_weights(path("overlap/checkpoints/final.safetensors"), path("no_overlap/checkpoints/final.safetensors"),
                      {0.0, 0.0});
}

// adapt --adabn on 2 ranks: both re-estimate the statistics in step (their batch norm is
// synchronised, so a rank that skipped a pass would hang the other), the run finishes once,
// and the final statistics are the 2-rank ones, not the initial model's.
TEST_F(MpiDataParallel, TwoRanksReestimateTheStatisticsTogether) {
  if (!fs::exists(path("single/checkpoints/final.safetensors"))) {
    auto r = run_cbst(train_args(2, "single"), path("single.log"), "OMP_NUM_THREADS=1");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  const auto r = run_cbst_on_2_ranks(adapt_args(1, "adapt_ranks_adabn") + " --adabn", path("adapt_ranks_adabn.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(count(r.output, "cbst adapt: done"), 1u) << r.output;
  const std::string log = read(path("adapt_ranks_adabn/log.txt"));
  EXPECT_EQ(count(log, "before round 1: AdaBN, "), 1u) << log;
  EXPECT_EQ(count(log, "round 1/1: AdaBN, "), 1u) << log;
  const auto initial = weights::load_checkpoint(path("single/checkpoints/final.safetensors"));
  const auto adapted = weights::load_checkpoint(path("adapt_ranks_adabn/checkpoints/final.safetensors"));
  int moved = 0, buffers = 0;
  for (const auto& [name, t] : adapted) {
    if (!name.ends_with("running_mean") && !name.ends_with("running_var")) continue;
    ++buffers;
    const std::vector<float> v = t.to_vector<float>();
    for (float x : v) ASSERT_TRUE(std::isfinite(x)) << name;
    if (v != initial.at(name).to_vector<float>()) ++moved;
  }
  EXPECT_GT(buffers, 0);
  EXPECT_EQ(moved, buffers);
}

TEST_F(MpiDataParallel, TwoRanksLabelARoundExactlyAsOneProcess) {
  if (!fs::exists(path("single/checkpoints/final.safetensors"))) {
    auto r = run_cbst(train_args(2, "single"), path("single.log"), "OMP_NUM_THREADS=1");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  auto r = run_cbst(adapt_args(2, "adapt_single"), path("adapt_single.log"), "OMP_NUM_THREADS=1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cbst_on_2_ranks(adapt_args(1, "adapt_ranks"), path("adapt_ranks.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;

  // Thresholds, pool sizes, coverage, accuracy and previews: the same file.
  const std::string thresholds = read(path("adapt_single/rounds/1/thresholds.json"));
  ASSERT_FALSE(thresholds.empty());
  EXPECT_EQ(read(path("adapt_ranks/rounds/1/thresholds.json")), thresholds);
  // Every pseudo-label map (3 written by rank 0, 4 by rank 1) and preview, byte for byte.
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(path("adapt_single/rounds/1/pseudo"))) {
    ++files;
    const fs::path other = fs::path(path("adapt_ranks/rounds/1/pseudo")) / e.path().filename();
    ASSERT_TRUE(fs::exists(other)) << other;
    EXPECT_EQ(read(other), read(e.path())) << e.path().filename();
  }
  EXPECT_EQ(files, 7u + 4u) << "7 label maps and 4 previews";
  EXPECT_EQ(std::distance(fs::directory_iterator(path("adapt_ranks/rounds/1/pseudo")), fs::directory_iterator()),
            std::ptrdiff_t(files));
  // Then one epoch on 4 source + 7 target images (5 global batches of 2).
  expect_same_weights(path("adapt_single/checkpoints/final.safetensors"),
                      path("adapt_ranks/checkpoints/final.safetensors"), kWeights);
  EXPECT_EQ(count(r.output, "cbst adapt: done"), 1u) << r.output;
  // The run counts its steps in global batches too (its ETA counted 10 on 2 ranks before).
  for (const char* run : {"adapt_single", "adapt_ranks"}) {
    const std::string log = read(path(std::string(run) + "/log.txt"));
    EXPECT_NE(log.find("step 5/5:"), std::string::npos) << run << ": " << log;
    EXPECT_EQ(log.find("step 6/"), std::string::npos) << run << ": " << log;
  }

  // `cbst pseudolabel` from a model run shares the images the same way: the same folder.
  const std::string label_args = "pseudolabel --checkpoint " + path("single/checkpoints/final.safetensors") +
                                 " --data cityscapes=" + path("data/cityscapes") + " --previews 2 --out ";
  r = run_cbst(label_args + path("pl_single"), path("pl_single.log"), "OMP_NUM_THREADS=1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cbst_on_2_ranks(label_args + path("pl_ranks"), path("pl_ranks.log"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(count(r.output, "wrote 7 label maps"), 1u) << r.output;
  files = 0;
  for (const auto& e : fs::directory_iterator(path("pl_single"))) {
    ++files;
    const fs::path other = fs::path(path("pl_ranks")) / e.path().filename();
    ASSERT_TRUE(fs::exists(other)) << other;
    EXPECT_EQ(read(other), read(e.path())) << e.path().filename();
  }
  EXPECT_EQ(files, 7u + 2u + 1u) << "7 label maps, 2 previews and thresholds.json";
  EXPECT_EQ(std::distance(fs::directory_iterator(path("pl_ranks")), fs::directory_iterator()), std::ptrdiff_t(files));
}

}  // namespace
}  // namespace cbst
