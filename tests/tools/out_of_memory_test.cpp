// Memory running out in the `cbst` program ends in one line on stderr, "cbst: error: ... out
// of memory while <stage>; <what to do>", and exit status 1: never a bare "std::bad_alloc",
// never a terminate. The program runs with its address space capped (RLIMIT_AS, through the
// shell's `ulimit -v`) and is asked for more than the cap leaves. Each case first runs a
// small job under the same cap, so a cap too tight for the program itself (a CUDA build maps
// large libraries) fails the test instead of passing it by accident.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/sanitizers.h"
#include "tests/tools/cli_runner.h"
#include "weights/safetensors.h"


namespace cbst {
namespace {

namespace fs = std::filesystem;

// 1280 MiB of address space: enough for the program and the small jobs (a CUDA build maps
// about 600 MiB of libraries), less than each large job asks for in one allocation (2 GiB).
constexpr int kCapMiB = 1280;

struct CappedRun {
  int exit_code = -1;  // -1: killed by a signal (an abort after terminate, say)
  std::string err;
};

class CliOutOfMemory : public ::testing::Test {
 protected:
  void SetUp() override {
#if CBST_ASAN
    GTEST_SKIP() << "AddressSanitizer reserves terabytes of address space: no RLIMIT_AS run is possible";
#endif
    dir_ = fs::temp_directory_path() / ("cbst_oom_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::string path(const std::string& rel) const { return (dir_ / rel).string(); }

  // stdout is dropped: the one line asked for is stderr's. One thread each for OpenMP and
  // OpenBLAS and no GPU, so that the program's own address space stays small and steady.
  CappedRun run_capped(const std::string& args) const {
    const std::string cmd = "ulimit -v " + std::to_string(kCapMiB * 1024) +
                            " && OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 CUDA_VISIBLE_DEVICES= exec " +
                            testing::cbst_binary().string() + " " + args + " > /dev/null 2> " + path("err.log");
    const int status = std::system(cmd.c_str());
    std::stringstream err;
    err << std::ifstream(path("err.log")).rdbuf();
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, err.str()};
  }

  static void expect_one_out_of_memory_line(const CappedRun& r, const std::string& stage) {
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.err.rfind("cbst: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find("out of memory while " + stage + "; "), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "exactly one line: " << r.err;
    EXPECT_EQ(r.err.find("bad_alloc"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(".cpp"), std::string::npos) << r.err;
  }

  fs::path dir_;
};

// No reader is involved: the loader's worker resizes the images to 16384×8192, scales them
// by 1.3 and builds a batch of floats (gigabytes). Its std::bad_alloc crosses the thread to
// main, the last resort, which names the command.
TEST_F(CliOutOfMemory, RunningOutInACommandIsOneLineNamingIt) {
  const auto synth = testing::run_cbst("synth --out " + path("data") + " --size 32x64 --source 2 --target-train 0 "
                                       "--target-val 0", path("synth.log"));
  ASSERT_EQ(synth.exit_code, 0) << synth.output;
  const std::string train = "train --data gta5=" + path("data/gta5") + " --model small-fcn --epochs 1 "
                            "--scale-range 1.3,1.3 --run ";
  const CappedRun ok = run_capped(train + path("small") + " --resize 64");
  ASSERT_EQ(ok.exit_code, 0) << "the cap leaves room for the program itself: " << ok.err;

  const CappedRun r = run_capped(train + path("large") + " --resize 16384");
  expect_one_out_of_memory_line(r, "running `cbst train`");
}

// A reader reached by path names the file and the format (read_safetensors(path) let
// std::bad_alloc through: "cbst: error: std::bad_alloc").
TEST_F(CliOutOfMemory, AReaderNamesTheFileAndTheFormat) {
  weights::TensorMap small;
  small.insert("probs", Tensor::from_vector<float>({0.25f, 0.75f, 0.5f, 0.5f}, {1, 2, 1, 2}));
  weights::write_safetensors(path("small.safetensors"), small);
  const std::string options = " --method cbst --portion 0.5 --out " + path("labels.safetensors");
  const CappedRun ok = run_capped("pseudolabel --probs " + path("small.safetensors") + options);
  ASSERT_EQ(ok.exit_code, 0) << "the cap leaves room for the program itself: " << ok.err;

  // A valid file: 2 GiB of f16 probabilities, which the reader holds as read before widening
  // them to f32. Sparse: its zeros are never written to disk.
  const std::string header =
      R"({"probs":{"dtype":"F16","shape":[1,2,32768,16384],"data_offsets":[0,2147483648]}})";
  std::string head(8, '\0');
  for (size_t i = 0; i < 8; ++i) head[i] = char(uint64_t(header.size()) >> (8 * i) & 0xff);
  { std::ofstream(path("huge.safetensors"), std::ios::binary) << head << header; }
  fs::resize_file(path("huge.safetensors"), 8 + header.size() + (uint64_t(2) << 30));
  const CappedRun r = run_capped("pseudolabel --probs " + path("huge.safetensors") + options);
  expect_one_out_of_memory_line(r, "reading it as safetensors");
  EXPECT_EQ(r.err.rfind("cbst: error: " + path("huge.safetensors") + ": ", 0), 0u) << r.err;
}

// A list file whose first line does not fit in memory: std::getline used to stop quietly, as
// at the end of the file, and the list looked empty.
TEST_F(CliOutOfMemory, AListFileNamesItselfAndTheStage) {
  const auto synth = testing::run_cbst("synth --out " + path("data") + " --size 32x64 --source 1 --target-train 0 "
                                       "--target-val 0", path("synth.log"));
  ASSERT_EQ(synth.exit_code, 0) << synth.output;
  { std::ofstream(path("data/small.txt")) << "gta5/images/00001.png gta5/labels/00001.png\n"; }
  const std::string priors = "priors --size 8x16 --out " + path("prior.safetensors") + " --data list=";
  const CappedRun ok = run_capped(priors + path("data/small.txt"));
  ASSERT_EQ(ok.exit_code, 0) << "the cap leaves room for the program itself: " << ok.err;

  { std::ofstream(path("data/huge.txt")) << "gta5/images/"; }
  fs::resize_file(path("data/huge.txt"), uint64_t(4) << 30);  // one line of 4 GiB, sparse
  const CappedRun r = run_capped(priors + path("data/huge.txt"));
  expect_one_out_of_memory_line(r, "reading the list file");
  EXPECT_EQ(r.err.rfind("cbst: error: " + path("data/huge.txt") + ": ", 0), 0u) << r.err;
}

}  // namespace
}  // namespace cbst
