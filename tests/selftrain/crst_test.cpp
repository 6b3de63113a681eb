// CRST's regularisers: MRKLD against its definition and finite differences, LRENT's soft
// pseudo-labels and selection against the authors' formulas replayed literally, and the soft
// targets of a batch.
#include "selftrain/crst.h"

#include <gtest/gtest.h>

#include <cmath>

#include "engine/gradcheck.h"
#include "engine/ops.h"
#include "engine/random.h"

namespace cbst {
namespace {

Tensor random_logits(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  Tensor t = rand_uniform(shape, -2.0, 2.0, DType::f64, Device::cpu(), &gen);
  t.set_requires_grad(true);
  return t;
}

// reg_loss_calc of crst_seg.py (l. 824–865) one pixel at a time: ce/valid_num +
// w·kld/valid_reg_num, kld = Σ over valid pixels of regularised samples of Σ_c −log p_c / C.
double mrkld_brute_force(const Tensor& logits, const std::vector<uint8_t>& labels,
                         const std::vector<bool>& regularized, double weight) {
  const int64_t n = logits.size(0), c = logits.size(1), inner = logits.size(2) * logits.size(3);
  const std::vector<double> x = logits.to_vector<double>();
  double ce = 0, kld = 0, valid = 0, valid_reg = 0;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t p = 0; p < inner; ++p) {
      const uint8_t y = labels[size_t(b * inner + p)];
      if (y == 255) continue;
      double z = 0;
      for (int64_t k = 0; k < c; ++k) z += std::exp(x[size_t((b * c + k) * inner + p)]);
      ce -= x[size_t((b * c + y) * inner + p)] - std::log(z);
      valid += 1;
      if (!regularized[size_t(b)]) continue;
      for (int64_t k = 0; k < c; ++k) kld -= (x[size_t((b * c + k) * inner + p)] - std::log(z)) / double(c);
      valid_reg += 1;
    }
  return ce / valid + (valid_reg > 0 ? weight * kld / valid_reg : 0.0);
}

std::vector<uint8_t> random_labels(int64_t count, int64_t classes, uint64_t seed) {
  Generator gen(seed);
  std::vector<uint8_t> v(static_cast<size_t>(count));
  for (auto& y : v) y = gen.next_below(5) == 0 ? 255 : uint8_t(gen.next_below(uint64_t(classes)));
  return v;
}

TEST(Mrkld, MatchesTheAuthorsLossOnePixelAtATime) {
  const Tensor x = random_logits({3, 5, 4, 3}, 1);
  const std::vector<uint8_t> y = random_labels(3 * 12, 5, 2);
  const Tensor labels = Tensor::from_vector<uint8_t>(y, {3, 4, 3});
  for (const std::vector<bool>& reg : {std::vector<bool>{false, true, true}, std::vector<bool>{true, false, false},
                                       std::vector<bool>{false, false, false}}) {
    EXPECT_NEAR(mrkld_loss(x, labels, reg, 0.01).item<double>(), mrkld_brute_force(x, y, reg, 0.01), 1e-13);
    EXPECT_NEAR(mrkld_loss(x, labels, reg, 0.7).item<double>(), mrkld_brute_force(x, y, reg, 0.7), 1e-13);
  }
}

TEST(Mrkld, BackwardMatchesFiniteDifferences) {
  const Tensor x = random_logits({2, 4, 3, 5}, 3);
  const Tensor labels = Tensor::from_vector<uint8_t>(random_labels(2 * 15, 4, 4), {2, 3, 5});
  // Smooth in f64: eps 1e-6 gives central differences accurate to ~1e-9.
  GradcheckOptions o;
  o.eps = 1e-6;
  o.tol = 1e-6;
  const GradcheckResult r = gradcheck(
      [&](const std::vector<Tensor>& v) { return mrkld_loss(v[0], labels, {false, true}, 0.5); }, {x}, o);
  EXPECT_TRUE(r.ok) << r.report;
}

TEST(Mrkld, IsKlToUniformUpToLogC) {
  // One regularised pixel, ignore everywhere else in the CE (no labels): the regulariser alone
  // is −Σ log p / C = KL(u ‖ p) + log C.
  const std::vector<double> logits{0.3, -1.2, 2.0};
  const Tensor x = Tensor::from_vector<double>(logits, {1, 3, 1, 1});
  const Tensor labels = Tensor::from_vector<uint8_t>({1}, {1, 1, 1});
  double z = 0;
  for (double v : logits) z += std::exp(v);
  double kl = 0;
  for (double v : logits) kl += (1.0 / 3) * std::log((1.0 / 3) / (std::exp(v) / z));
  const double ce = -(logits[1] - std::log(z));
  EXPECT_NEAR(mrkld_loss(x, labels, {true}, 1.0).item<double>(), ce + kl + std::log(3.0), 1e-14);
}

// label_selection of crst_seg.py (l. 678–695), literally: ŷ = (p/k)^{1/α} / Σ, then the
// drop test reg_score ≥ sel_score.
struct AuthorsLrent {
  std::vector<double> soft;
  bool keep;
};
AuthorsLrent authors_lrent(const std::vector<float>& p, const std::vector<float>& k, double alpha) {
  AuthorsLrent a{std::vector<double>(p.size()), false};
  double sum = 0;
  for (size_t c = 0; c < p.size(); ++c) sum += (a.soft[c] = std::pow(double(p[c]) / k[c], 1.0 / alpha));
  double reg = 0, sel = 0;
  for (size_t c = 0; c < p.size(); ++c) {
    a.soft[c] /= sum;
    reg += -a.soft[c] * std::log(p[c] + 1e-32) + alpha * a.soft[c] * std::log(a.soft[c] + 1e-32);
    sel += -a.soft[c] * std::log(k[c] + 1e-32);
  }
  a.keep = !(reg >= sel);
  return a;
}

TEST(Lrent, SoftLabelsAndSelectionMatchTheAuthorsFormulas) {
  Generator gen(7);
  int kept = 0, dropped = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    const int64_t classes = 2 + int64_t(gen.next_below(18));
    std::vector<float> p(static_cast<size_t>(classes)), k(static_cast<size_t>(classes));
    double total = 0;
    for (auto& v : p) total += (v = float(std::pow(gen.next_double(), 3.0)) + 1e-6f);
    for (auto& v : p) v = float(v / total);
    for (auto& v : k) v = float(0.05 + 0.95 * gen.next_double());
    const double alpha = trial % 2 ? 0.25 : 0.5 + gen.next_double();
    std::vector<double> soft(static_cast<size_t>(classes));
    const bool keep = lrent_soft_label(soft.data(), p.data(), k.data(), classes, alpha);
    const AuthorsLrent want = authors_lrent(p, k, alpha);
    for (int64_t c = 0; c < classes; ++c) ASSERT_NEAR(soft[size_t(c)], want.soft[size_t(c)], 1e-12) << trial;
    // The drop test, rewritten: keep iff Σ_c (p_c/k_c)^{1/α} > 1 (ε's aside; skip the
    // near-ties where the ε's or rounding could decide).
    double z = 0;
    for (int64_t c = 0; c < classes; ++c) z += std::pow(double(p[size_t(c)]) / k[size_t(c)], 1.0 / alpha);
    if (std::abs(z - 1.0) < 1e-9) continue;
    EXPECT_EQ(keep, want.keep) << trial;
    EXPECT_EQ(keep, z > 1.0) << trial;
    (keep ? kept : dropped)++;
  }
  EXPECT_GT(kept, 100);  // both outcomes are exercised
  EXPECT_GT(dropped, 100);
}

TEST(Lrent, KeepsEveryPixelHardCbstKeepsWithItsArgmax) {
  Generator gen(11);
  const int64_t n = 2, classes = 5, h = 6, w = 7;
  Tensor probs = rand_uniform({n, classes, h, w}, 0.0, 1.0, DType::f32, Device::cpu(), &gen);
  probs = div(probs, sum(probs, {1}, true));
  const Tensor thr = Tensor::from_vector<float>({0.5f, 0.3f, 0.45f, 0.25f, 0.35f}, {classes});
  const std::vector<uint8_t> hard = pseudo_labels(probs, Tensor(), thr).labels.to_vector<uint8_t>();
  const std::vector<uint8_t> soft = lrent_pseudo_labels(probs, Tensor(), thr, 0.25, {}).to_vector<uint8_t>();
  int extra = 0;
  for (size_t k = 0; k < hard.size(); ++k) {
    if (hard[k] != 255) {
      EXPECT_EQ(soft[k], hard[k]) << k;  // argmax ŷ = argmax p/k
    }
    extra += hard[k] == 255 && soft[k] != 255;
  }
  EXPECT_GT(extra, 0);  // Σ (p/k)^4 > 1 with every p/k < 1 happens
}

TEST(Lrent, BatchTargetsAreOneHotOnTheSourceAndSoftLabelsOnTheTarget) {
  Generator gen(13);
  const int64_t classes = 3;
  Tensor probs = rand_uniform({2, classes, 4, 4}, 0.0, 1.0, DType::f32, Device::cpu(), &gen);
  probs = div(probs, sum(probs, {1}, true));
  const Tensor thr = Tensor::from_vector<float>({0.4f, 0.5f, 0.6f}, {classes});
  const LrentTargets targets(probs, Tensor(), thr, 0.25, {});
  // Sample 0: source (index 0 < offset 5), label 2 everywhere but one ignored pixel.
  // Sample 1: target image 1 (index 6), flipped crop of 2×2 at (1, 2) of the 4×4 grid.
  data::Batch batch;
  std::vector<uint8_t> lab{2, 2, 255, 2, 0, 255, 1, 1};
  batch.labels = Tensor::from_vector<uint8_t>(lab, {2, 2, 2});
  batch.indices = {0, 6};
  batch.draws = {data::AugmentDraw{.scaled_width = 4, .scaled_height = 4, .x0 = 0, .y0 = 0,
                                   .out_width = 2, .out_height = 2, .flip = false},
                 data::AugmentDraw{.scaled_width = 4, .scaled_height = 4, .x0 = 1, .y0 = 2,
                                   .out_width = 2, .out_height = 2, .flip = true}};
  const std::vector<float> t = targets.build(batch, 5, Device::cpu()).to_vector<float>();
  auto at = [&](int64_t b, int64_t c, int64_t y, int64_t x) { return t[size_t(((b * classes + c) * 2 + y) * 2 + x)]; };
  EXPECT_EQ(at(0, 2, 0, 0), 1.0f);
  EXPECT_EQ(at(0, 0, 0, 0) + at(0, 1, 0, 0), 0.0f);
  for (int64_t c = 0; c < classes; ++c) EXPECT_EQ(at(0, c, 1, 0), 0.0f);  // ignored
  for (int64_t c = 0; c < classes; ++c) EXPECT_EQ(at(1, c, 0, 1), 0.0f);  // ignored
  // Output (y, x) of the flipped crop reads grid pixel (2 + y, 1 + (1 − x)).
  const std::vector<float> p = probs.to_vector<float>();
  for (auto [y, x] : {std::pair<int64_t, int64_t>{0, 0}, {1, 0}, {1, 1}}) {
    std::vector<float> s(classes);
    for (int64_t c = 0; c < classes; ++c) s[size_t(c)] = p[size_t(((1 * classes + c) * 4 + 2 + y) * 4 + 1 + (1 - x))];
    const AuthorsLrent want = authors_lrent(s, {0.4f, 0.5f, 0.6f}, 0.25);
    for (int64_t c = 0; c < classes; ++c) EXPECT_NEAR(at(1, c, y, x), want.soft[size_t(c)], 1e-6) << y << x;
  }
}

TEST(Regularizer, NamesRoundTripAndDefaultsAreTheAuthors) {
  for (Regularizer r : {Regularizer::none, Regularizer::mrkld, Regularizer::lrent})
    EXPECT_EQ(regularizer_from_name(regularizer_name(r)), r);
  EXPECT_THROW(regularizer_from_name("mrent"), Error);
  EXPECT_DOUBLE_EQ(default_reg_weight(Regularizer::mrkld), 0.1 * 0.1);  // mrkld.sh, applied twice
  EXPECT_EQ(default_reg_weight(Regularizer::lrent), 0.25);             // lrent.sh
}

}  // namespace
}  // namespace cbst
