// The CUDA confusion-matrix kernel against the CPU count.
#include <gtest/gtest.h>

#include <random>

#include "data/evaluation.h"
#include "engine/cuda_context.h"

using namespace cbst::data;

TEST(CudaConfusionMatrix, MatchesTheCpuCount) {
  if (!cbst::cuda_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(9);
  // Odd sizes so that the grid-stride loop's tail is exercised; values beyond C on both sides.
  for (int64_t n : {int64_t(1), int64_t(1000003), int64_t(2 * 1024 * 1024 + 7)}) {
    std::vector<uint8_t> gt(n), pred(n);
    for (int64_t i = 0; i < n; ++i) {
      gt[i] = uint8_t(rng() % 21 == 20 ? 255 : rng() % 21);
      pred[i] = uint8_t(rng() % 20);
    }
    ConfusionMatrix cpu(19), gpu(19);
    cpu.add(gt.data(), pred.data(), n);
    const auto dev = cbst::Device::cuda(0);
    gpu.add(cbst::Tensor::from_vector<uint8_t>(gt, {n}).to(dev), cbst::Tensor::from_vector<uint8_t>(pred, {n}).to(dev));
    EXPECT_EQ(gpu.counts(), cpu.counts()) << "n = " << n;
  }
}

TEST(CudaConfusionMatrix, AccumulatesAcrossCalls) {
  if (!cbst::cuda_available()) GTEST_SKIP() << "no CUDA device";
  const auto dev = cbst::Device::cuda(0);
  const std::vector<uint8_t> gt = {0, 1, 2, 255}, pred = {0, 2, 2, 0};
  ConfusionMatrix cm(19);
  for (int k = 0; k < 3; ++k)
    cm.add(cbst::Tensor::from_vector<uint8_t>(gt, {2, 2}).to(dev), cbst::Tensor::from_vector<uint8_t>(pred, {2, 2}).to(dev));
  EXPECT_EQ(cm.at(0, 0), 3);
  EXPECT_EQ(cm.at(1, 2), 3);
  EXPECT_EQ(cm.valid_pixels(), 9);
}
