// The CUDA labelling kernels against their CPU twin: identical thresholds, pool sizes,
// labels and confidences (both round every operation alike, see selftrain/labeling_math.h).
#include <gtest/gtest.h>

#include "engine/cuda_context.h"
#include "selftrain/pseudo_labels.h"
#include "tests/selftrain/labeling_cases.h"

namespace cbst {
namespace {

using testing::LabelingCase;

class PseudoLabelsCuda : public ::testing::TestWithParam<LabelingCase> {};

TEST_P(PseudoLabelsCuda, ThresholdsAndLabelsEqualTheCpuTwin) {
  if (!cbst::cuda_available()) GTEST_SKIP() << "no CUDA device";
  const LabelingCase& c = GetParam();
  const testing::LabelingProblem p = testing::make_problem(c);
  const Tensor probs = p.probs.to(Device::cuda());
  const Tensor prior = p.prior.defined() ? p.prior.to(Device::cuda()) : Tensor();
  const ThresholdParams params = testing::threshold_params(c);

  const ClassThresholds cpu = class_thresholds(p.probs, p.prior, params);
  const ClassThresholds gpu = class_thresholds(probs, prior, params);
  ASSERT_TRUE(gpu.thresholds.device().is_cuda());
  EXPECT_EQ(gpu.thresholds.to(Device::cpu()).to_vector<float>(), cpu.thresholds.to_vector<float>());
  EXPECT_EQ(gpu.pool_sizes.to(Device::cpu()).to_vector<int64_t>(),
            cpu.pool_sizes.to_vector<int64_t>());

  const LabelParams lp{.label_size = {c.height, c.width}, .with_confidence = true};
  const PseudoLabels want = pseudo_labels(p.probs, p.prior, cpu.thresholds, lp);
  const PseudoLabels got = pseudo_labels(probs, prior, gpu.thresholds, lp);
  EXPECT_EQ(got.labels.to(Device::cpu()).to_vector<uint8_t>(), want.labels.to_vector<uint8_t>());
  EXPECT_EQ(got.confidence.to(Device::cpu()).to_vector<float>(),
            want.confidence.to_vector<float>());

  EXPECT_EQ(selection_scores(probs, prior, {c.height, c.width}).to(Device::cpu()).to_vector<float>(),
            selection_scores(p.probs, p.prior, {c.height, c.width}).to_vector<float>());
}

// --pool-sampling authors on the GPU (tile ranks, prefix counts, zeros as histogram counts):
// the CPU twin's thresholds and the authors' rule replayed, bit for bit.
TEST_P(PseudoLabelsCuda, AuthorsSamplingEqualsTheCpuTwinAndTheirRule) {
  if (!cbst::cuda_available()) GTEST_SKIP() << "no CUDA device";
  const LabelingCase& c = GetParam();
  const testing::LabelingProblem p = testing::make_problem(c);
  const std::vector<float> scores = testing::reference_scores(c, p);
  for (int64_t every : {int64_t(4), c.pool_stride}) {
    const ThresholdParams params = testing::authors_threshold_params(c, every);
    const ClassThresholds gpu = class_thresholds(
        p.probs.to(Device::cuda()), p.prior.defined() ? p.prior.to(Device::cuda()) : Tensor(), params);
    const ClassThresholds cpu = class_thresholds(p.probs, p.prior, params);
    const testing::ReferenceThresholds want = testing::reference_authors_thresholds(c, scores, every);
    EXPECT_EQ(gpu.thresholds.to(Device::cpu()).to_vector<float>(), cpu.thresholds.to_vector<float>());
    EXPECT_EQ(gpu.thresholds.to(Device::cpu()).to_vector<float>(), want.thresholds);
    EXPECT_EQ(gpu.pool_sizes.to(Device::cpu()).to_vector<int64_t>(), want.pool_sizes);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, PseudoLabelsCuda, ::testing::ValuesIn(testing::labeling_cases()),
                         [](const auto& info) { return info.param.name; });

// Large pools exercise every digit of the histograms (many pixels per bucket, buckets far
// apart, a rank that falls deep inside a crowded bucket) and the warp aggregation.
TEST(PseudoLabelsCudaLarge, ThresholdsEqualTheCpuTwinOnCityscapesLikeShapes) {
  if (!cbst::cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (const LabelingCase& c :
       {LabelingCase{"cbst", 3, 19, 33, 65, 257, 513, 0, 0, ThresholdPolicy::cbst, 0.2, 1},
        LabelingCase{"st_prior", 2, 19, 33, 65, 257, 513, 32, 64, ThresholdPolicy::st, 0.35, 4},
        LabelingCase{"cbst_prior", 2, 19, 33, 65, 257, 513, 32, 64, ThresholdPolicy::cbst, 0.5, 1},
        LabelingCase{"cbst_coarse", 2, 19, 33, 65, 257, 513, 0, 0, ThresholdPolicy::cbst, 0.3, 1,
                     true}}) {
    const testing::LabelingProblem p = testing::make_problem(c, 99);
    const ThresholdParams params = testing::threshold_params(c);
    const ClassThresholds cpu = class_thresholds(p.probs, p.prior, params);
    const ClassThresholds gpu = class_thresholds(
        p.probs.to(Device::cuda()), p.prior.defined() ? p.prior.to(Device::cuda()) : Tensor(),
        params);
    EXPECT_EQ(gpu.thresholds.to(Device::cpu()).to_vector<float>(), cpu.thresholds.to_vector<float>())
        << c.name;
    EXPECT_EQ(gpu.pool_sizes.to(Device::cpu()).to_vector<int64_t>(),
              cpu.pool_sizes.to_vector<int64_t>())
        << c.name;
    // The authors' sampling over many tiles per image (257·513 pixels: 515 tiles).
    ThresholdParams authors = params;
    authors.sampling = PoolSampling::authors;
    authors.pool_stride = 4;
    const ClassThresholds acpu = class_thresholds(p.probs, p.prior, authors);
    const ClassThresholds agpu = class_thresholds(
        p.probs.to(Device::cuda()), p.prior.defined() ? p.prior.to(Device::cuda()) : Tensor(),
        authors);
    EXPECT_EQ(agpu.thresholds.to(Device::cpu()).to_vector<float>(), acpu.thresholds.to_vector<float>())
        << c.name << " (authors)";
    EXPECT_EQ(agpu.pool_sizes.to(Device::cpu()).to_vector<int64_t>(),
              acpu.pool_sizes.to_vector<int64_t>())
        << c.name << " (authors)";
  }
}

TEST(PseudoLabelsCudaArguments, ThresholdsOnAnotherDeviceAreRefused) {
  if (!cbst::cuda_available()) GTEST_SKIP() << "no CUDA device";
  const Tensor probs = Tensor::full({1, 3, 2, 2}, 0.3, DType::f32, Device::cuda());
  EXPECT_THROW(pseudo_labels(probs, Tensor(), Tensor::ones({3})), Error);
  EXPECT_THROW(class_thresholds(probs, Tensor::ones({3, 2, 2}), {}), Error);
}

}  // namespace
}  // namespace cbst
