// class_thresholds / pseudo_labels / selection_scores on the CPU against hand-computed values
// and against the brute-force reference of labeling_cases.h.
#include "selftrain/pseudo_labels.h"

#include <gtest/gtest.h>

#include "tests/selftrain/labeling_cases.h"

namespace cbst {
namespace {

using testing::LabelingCase;

class PseudoLabelsBruteForce : public ::testing::TestWithParam<LabelingCase> {};

TEST_P(PseudoLabelsBruteForce, ThresholdsAndLabelsMatchSortingEveryPool) {
  const LabelingCase& c = GetParam();
  const testing::LabelingProblem p = testing::make_problem(c);
  const std::vector<float> scores = testing::reference_scores(c, p);
  const testing::ReferenceThresholds want = testing::reference_thresholds(c, scores);

  const ClassThresholds got = class_thresholds(p.probs, p.prior, testing::threshold_params(c));
  ASSERT_EQ(got.thresholds.shape(), Shape{c.classes});
  ASSERT_EQ(got.pool_sizes.dtype(), DType::i64);
  // Exact: the thresholds are pool members and both sides round every operation alike.
  EXPECT_EQ(got.thresholds.to_vector<float>(), want.thresholds);
  EXPECT_EQ(got.pool_sizes.to_vector<int64_t>(), want.pool_sizes);

  const testing::ReferenceLabels want_labels =
      testing::reference_labels(c, scores, want.thresholds);
  const PseudoLabels labels =
      pseudo_labels(p.probs, p.prior, got.thresholds,
                    {.label_size = {c.height, c.width}, .with_confidence = true});
  ASSERT_EQ(labels.labels.shape(), (Shape{c.images, c.height, c.width}));
  EXPECT_EQ(labels.labels.to_vector<uint8_t>(), want_labels.labels);
  EXPECT_EQ(labels.confidence.to_vector<float>(), want_labels.confidence);
}

INSTANTIATE_TEST_SUITE_P(Cases, PseudoLabelsBruteForce,
                         ::testing::ValuesIn(testing::labeling_cases()),
                         [](const auto& info) { return info.param.name; });

// --pool-sampling authors: bit for bit the thresholds of the authors' rule, with their K = 4
// and with each case's own stride as K.
TEST_P(PseudoLabelsBruteForce, AuthorsSamplingMatchesTheirPoolsBitForBit) {
  const LabelingCase& c = GetParam();
  const testing::LabelingProblem p = testing::make_problem(c);
  const std::vector<float> scores = testing::reference_scores(c, p);
  for (int64_t every : {int64_t(4), c.pool_stride}) {
    const ThresholdParams params = testing::authors_threshold_params(c, every);
    const testing::ReferenceThresholds want = testing::reference_authors_thresholds(c, scores, every);
    const ClassThresholds got = class_thresholds(p.probs, p.prior, params);
    EXPECT_EQ(got.thresholds.to_vector<float>(), want.thresholds) << "K = " << every;
    EXPECT_EQ(got.pool_sizes.to_vector<int64_t>(), want.pool_sizes) << "K = " << every;
  }
}

// The spurious zeros move the rank: a pool of 4 confidences plus the authors' 0.0 has n = 5,
// so p = 0.4 selects the 2nd largest (⌊5·0.4⌋ = 2), where pixel-index sampling (n = 4,
// ⌊1.6⌋ = 1) selects the largest; and at p = 1 the zero itself is selected and becomes 1.0.
TEST(ClassThresholds, AuthorsZeroEntryCountsInTheRank) {
  // One image 1×4, one class: every pixel is class 0 with confidence 1 (softmax of one class),
  // so use two classes with class 0 always winning.
  const Tensor probs = Tensor::from_vector<float>({0.9f, 0.8f, 0.7f, 0.6f, 0.1f, 0.2f, 0.3f, 0.4f},
                                                  {1, 2, 1, 4});
  ThresholdParams params{.policy = ThresholdPolicy::cbst, .portion = 0.4, .pool_stride = 1};
  EXPECT_EQ(class_thresholds(probs, Tensor(), params).thresholds.to_vector<float>()[0], 0.9f);
  params.sampling = PoolSampling::authors;
  const ClassThresholds a = class_thresholds(probs, Tensor(), params);
  EXPECT_EQ(a.thresholds.to_vector<float>()[0], 0.8f);
  EXPECT_EQ(a.pool_sizes.to_vector<int64_t>(), (std::vector<int64_t>{4, 0}));
  params.portion = 1.0;
  EXPECT_EQ(class_thresholds(probs, Tensor(), params).thresholds.to_vector<float>()[0], 1.0f);
  // Every 2nd pixel of the class in raster order: 0.9 and 0.7, plus the zero.
  params.portion = 0.5;
  params.pool_stride = 2;
  const ClassThresholds b = class_thresholds(probs, Tensor(), params);
  EXPECT_EQ(b.thresholds.to_vector<float>()[0], 0.9f);  // ⌊3·0.5⌋ = 1
  EXPECT_EQ(b.pool_sizes.to_vector<int64_t>(), (std::vector<int64_t>{2, 0}));
}

TEST(PoolSampling, NamesRoundTrip) {
  for (PoolSampling s : {PoolSampling::pixel_index, PoolSampling::authors})
    EXPECT_EQ(pool_sampling_from_name(pool_sampling_name(s)), s);
  EXPECT_THROW(pool_sampling_from_name("every-4th"), Error);
}

TEST(SelectionScores, MatchTheIndependentResizeBitForBit) {
  for (const LabelingCase& c : testing::labeling_cases()) {
    const testing::LabelingProblem p = testing::make_problem(c);
    const Tensor s = selection_scores(p.probs, p.prior, {c.height, c.width});
    EXPECT_EQ(s.to_vector<float>(), testing::reference_scores(c, p)) << c.name;
  }
}

// torch.nn.functional.interpolate([[1, 2], [3, 4]], size=(4, 4), mode="bilinear",
// align_corners=False), worked by hand: source coordinate (dst + ½)/2 − ½ clamped at 0.
TEST(SelectionScores, UpsamplingMatchesHandComputedBilinearValues) {
  const Tensor probs = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 2, 2});
  const std::vector<float> want = {1.0f, 1.25f, 1.75f, 2.0f,  //
                                   1.5f, 1.75f, 2.25f, 2.5f,  //
                                   2.5f, 2.75f, 3.25f, 3.5f,  //
                                   3.0f, 3.25f, 3.75f, 4.0f};
  EXPECT_EQ(selection_scores(probs, Tensor(), {4, 4}).to_vector<float>(), want);
}

// [0, 1, 2, 3] → 3 samples: scale 4/3, sources 1/6, 3/2, 17/6 (all interior).
TEST(SelectionScores, DownsamplingMatchesHandComputedBilinearValues) {
  const Tensor probs = Tensor::from_vector<float>({0, 1, 2, 3}, {1, 1, 1, 4});
  const std::vector<float> got = selection_scores(probs, Tensor(), {1, 3}).to_vector<float>();
  ASSERT_EQ(got.size(), 3u);
  // 1e-6: the f32 scale 4/3 carries a relative error of ~3e-8 into coordinates below 3.
  EXPECT_NEAR(got[0], 1.0 / 6.0, 1e-6);
  EXPECT_NEAR(got[1], 1.5, 1e-6);
  EXPECT_NEAR(got[2], 17.0 / 6.0, 1e-6);
}

TEST(SelectionScores, PriorIsInterpolatedAndMultiplied) {
  const Tensor probs = Tensor::full({1, 1, 1, 1}, 0.5);
  const Tensor prior = Tensor::from_vector<float>({0, 1}, {1, 1, 2});
  // prior row [0, 1] at width 4: [0, 0.25, 0.75, 1], times p = 0.5.
  const std::vector<float> want = {0.0f, 0.125f, 0.375f, 0.5f};
  EXPECT_EQ(selection_scores(probs, prior, {1, 4}).to_vector<float>(), want);
}

TEST(SelectionScores, SameSizeIsAnExactCopy) {
  const LabelingCase c{"copy", 2, 3, 5, 6, 5, 6};
  const testing::LabelingProblem p = testing::make_problem(c);
  EXPECT_EQ(selection_scores(p.probs, Tensor()).to_vector<float>(), p.probs.to_vector<float>());
}

// Pool of class 0 = {0.9, 0.8, 0.7, 0.6}: t = ⌊4·0.5⌋ = 2, threshold = 0.8, the 2nd largest.
// Class 1 is never predicted: threshold 1.0.
TEST(ClassThresholds, RankRuleOnAHandMadePool) {
  const Tensor probs = Tensor::from_vector<float>({0.9f, 0.8f, 0.7f, 0.6f,  //
                                                   0.1f, 0.2f, 0.3f, 0.4f},
                                                  {1, 2, 1, 4});
  const ClassThresholds t = class_thresholds(probs, Tensor(), {.portion = 0.5});
  EXPECT_EQ(t.thresholds.to_vector<float>(), (std::vector<float>{0.8f, 1.0f}));
  EXPECT_EQ(t.pool_sizes.to_vector<int64_t>(), (std::vector<int64_t>{4, 0}));

  // The pixel exactly at its threshold (0.8) is kept.
  const PseudoLabels l = pseudo_labels(probs, Tensor(), t.thresholds, {.with_confidence = true});
  EXPECT_EQ(l.labels.to_vector<uint8_t>(), (std::vector<uint8_t>{0, 0, 255, 255}));
  EXPECT_EQ(l.confidence.to_vector<float>()[1], 1.0f);
}

// t = ⌊3·0.3⌋ = 0 for both pools (sizes 3 and 1) → 1.0; ST pools all 4 → t = 1 → 0.9.
TEST(ClassThresholds, ZeroRankGivesOneAndStSharesTheGlobalThreshold) {
  const Tensor probs = Tensor::from_vector<float>({0.9f, 0.8f, 0.7f, 0.4f,  //
                                                   0.1f, 0.2f, 0.3f, 0.6f},
                                                  {1, 2, 1, 4});
  const ClassThresholds cb = class_thresholds(probs, Tensor(), {.portion = 0.3});
  EXPECT_EQ(cb.thresholds.to_vector<float>(), (std::vector<float>{1.0f, 1.0f}));
  const ClassThresholds st =
      class_thresholds(probs, Tensor(), {.policy = ThresholdPolicy::st, .portion = 0.3});
  EXPECT_EQ(st.thresholds.to_vector<float>(), (std::vector<float>{0.9f, 0.9f}));
  EXPECT_EQ(st.pool_sizes.to_vector<int64_t>(), (std::vector<int64_t>{3, 1}));
}

// Stride 3 on a 1×7 image keeps flat indices 0, 3, 6.
TEST(ClassThresholds, PoolStrideKeepsEveryKthPixelOfEachImage) {
  const Tensor probs = Tensor::from_vector<float>(
      {0.9f, 0.1f, 0.1f, 0.7f, 0.1f, 0.1f, 0.5f, 0.1f, 0.9f, 0.9f, 0.3f, 0.9f, 0.9f, 0.5f},
      {1, 2, 1, 7});
  const ClassThresholds t = class_thresholds(probs, Tensor(), {.portion = 1.0, .pool_stride = 3});
  EXPECT_EQ(t.pool_sizes.to_vector<int64_t>(), (std::vector<int64_t>{3, 0}));
  EXPECT_EQ(t.thresholds.to_vector<float>(), (std::vector<float>{0.5f, 1.0f}));
}

// A zero prior makes the t-th largest confidence 0; like the authors' code, 0 becomes 1.0.
TEST(ClassThresholds, ZeroThresholdBecomesOne) {
  const Tensor probs = Tensor::full({1, 2, 2, 2}, 0.5);
  const Tensor prior = Tensor::zeros({2, 1, 1});
  const ClassThresholds t = class_thresholds(probs, prior, {.portion = 0.5});
  EXPECT_EQ(t.thresholds.to_vector<float>(), (std::vector<float>{1.0f, 1.0f}));
  EXPECT_EQ(t.pool_sizes.to_vector<int64_t>(), (std::vector<int64_t>{4, 0}));
}

// Thresholds from a confident first image (0.95 for both classes); the second image is
// uniform (every class at 0.5), below every threshold, so all of it is ignored.
TEST(PseudoLabels, AnImageBelowEveryThresholdIsAllIgnored) {
  std::vector<float> v;
  for (int c = 0; c < 2; ++c)
    for (int k = 0; k < 4; ++k) v.push_back(c == k % 2 ? 0.95f : 0.05f);
  for (int k = 0; k < 8; ++k) v.push_back(0.5f);
  const Tensor probs = Tensor::from_vector(v, {2, 2, 2, 2});
  const ClassThresholds t = class_thresholds(probs.narrow(0, 0, 1), Tensor(), {.portion = 0.5});
  EXPECT_EQ(t.thresholds.to_vector<float>(), (std::vector<float>{0.95f, 0.95f}));
  const std::vector<uint8_t> labels =
      pseudo_labels(probs, Tensor(), t.thresholds).labels.to_vector<uint8_t>();
  EXPECT_EQ(labels, (std::vector<uint8_t>{0, 1, 0, 1, 255, 255, 255, 255}));
}

TEST(PseudoLabels, ThresholdsOfOneIgnoreEverything) {
  const testing::LabelingCase c{"ones", 2, 4, 5, 5, 9, 9};
  const testing::LabelingProblem p = testing::make_problem(c);
  const PseudoLabels l = pseudo_labels(p.probs, Tensor(), Tensor::ones({4}), {.label_size = {9, 9}});
  EXPECT_EQ(l.labels.to_vector<uint8_t>(), std::vector<uint8_t>(2 * 9 * 9, 255));
}

// Equal r for classes 1 and 2: the lower class wins.
TEST(PseudoLabels, TiesGoToTheLowestClass) {
  const Tensor probs = Tensor::from_vector<float>({0.2f, 0.4f, 0.4f}, {1, 3, 1, 1});
  const Tensor thr = Tensor::from_vector<float>({0.5f, 0.4f, 0.4f}, {3});
  EXPECT_EQ(pseudo_labels(probs, Tensor(), thr).labels.to_vector<uint8_t>(),
            std::vector<uint8_t>{1});
}

TEST(PseudoLabels, BadArgumentsAreRefusedWithTheirShapes) {
  const Tensor probs = Tensor::full({1, 3, 2, 2}, 0.3);
  EXPECT_THROW(class_thresholds(Tensor::full({3, 2, 2}, 0.3), Tensor(), {}), Error);
  EXPECT_THROW(class_thresholds(probs, Tensor::ones({2, 4, 4}), {}), Error);
  EXPECT_THROW(class_thresholds(probs, Tensor(), {.portion = 1.5}), Error);
  EXPECT_THROW(class_thresholds(probs, Tensor(), {.pool_stride = 0}), Error);
  EXPECT_THROW(class_thresholds(probs.to(DType::f64), Tensor(), {}), Error);
  EXPECT_THROW(class_thresholds(Tensor::full({1, 256, 1, 1}, 0.1), Tensor(), {}), Error);
  EXPECT_THROW(pseudo_labels(probs, Tensor(), Tensor::ones({2})), Error);
  try {
    pseudo_labels(probs, Tensor::ones({2, 4, 4}), Tensor::ones({3}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 4, 4]"), std::string::npos) << e.what();
  }
}

TEST(ThresholdPolicy, NamesRoundTrip) {
  EXPECT_EQ(threshold_policy_from_name("st"), ThresholdPolicy::st);
  EXPECT_EQ(threshold_policy_from_name(threshold_policy_name(ThresholdPolicy::cbst)),
            ThresholdPolicy::cbst);
  EXPECT_THROW(threshold_policy_from_name("cbst-sp"), Error);
}

}  // namespace
}  // namespace cbst
