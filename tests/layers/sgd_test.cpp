// SGD: a hand-computed trajectory, schedules, clipping, state round trip, in-place buffers.
#include <gtest/gtest.h>

#include <cmath>

#include "layers/sgd.h"
#include "tests/layers/layer_test_util.h"

namespace cbst {
namespace {

Tensor leaf(std::vector<double> v) {
  const int64_t n = int64_t(v.size());
  Tensor t = Tensor::from_vector<double>(v, {n});
  t.set_requires_grad(true);
  return t;
}

// loss = Σ w² + 3 Σ b: ∂/∂w = 2w, ∂/∂b = 3.
void backward_toy(const Tensor& w, const Tensor& b) {
  add(sum(mul(w, w)), mul(sum(b), 3.0)).backward();
}

TEST(Sgd, ThreeStepsWithMomentumWeightDecayAndGroupMultipliersMatchHandComputation) {
  Tensor w = leaf({1.0}), b = leaf({0.5});
  Sgd opt(alex_param_groups({{"conv.weight", w}, {"conv.bias", b}}),
          {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01});
  // By hand (bias: lr×2, no decay):
  //   step 1: d_w = 2·1 + .01·1 = 2.01, buf 2.01, w = .799;  buf_b 3,   b = .5 − .2·3 = −.1
  //   step 2: d_w = 1.598 + .00799, buf 3.41499, w = .457501; buf_b 5.7, b = −1.24
  //   step 3: d_w = .915002 + .00457501, buf 3.99306801, w = .058194199; buf_b 8.13, b = −2.866
  const double expected_w[] = {0.799, 0.457501, 0.058194199};
  const double expected_b[] = {-0.1, -1.24, -2.866};
  for (int s = 0; s < 3; ++s) {
    opt.zero_grad();
    backward_toy(w, b);
    opt.step();
    EXPECT_NEAR(w.item<double>(), expected_w[s], 1e-12) << "step " << s + 1;
    EXPECT_NEAR(b.item<double>(), expected_b[s], 1e-12) << "step " << s + 1;
  }
  EXPECT_EQ(opt.iteration(), 3);
  EXPECT_TRUE(w.requires_grad() && w.is_leaf());
}

TEST(Sgd, AlexGroupsSplitBiasesAndBetas) {
  const auto groups = alex_param_groups({{"a.weight", leaf({1})}, {"a.bias", leaf({1})},
                                         {"bn.beta", leaf({1})}, {"bn.gamma", leaf({1})}});
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].params.size(), 2u);
  EXPECT_EQ(groups[1].params.size(), 2u);
  EXPECT_EQ(groups[1].lr_mult, 2.0);
  EXPECT_EQ(groups[1].decay_mult, 0.0);
}

TEST(Sgd, SchedulesFollowTheirFormulas) {
  SgdOptions o{.lr = 0.1};
  EXPECT_EQ(lr_at(o, 1000), 0.1);
  o.schedule = {.kind = LrSchedule::Kind::step, .gamma = 0.5, .step_size = 2};
  EXPECT_DOUBLE_EQ(lr_at(o, 1), 0.1);
  EXPECT_DOUBLE_EQ(lr_at(o, 2), 0.05);
  EXPECT_DOUBLE_EQ(lr_at(o, 5), 0.025);
  o.schedule = {.kind = LrSchedule::Kind::poly, .power = 0.9, .max_iter = 10};
  EXPECT_DOUBLE_EQ(lr_at(o, 0), 0.1);
  EXPECT_DOUBLE_EQ(lr_at(o, 5), 0.1 * std::pow(0.5, 0.9));
  EXPECT_EQ(lr_at(o, 10), 0.0);
  EXPECT_EQ(lr_at(o, 12), 0.0);
  // Linear warm-up on top of any kind: factor warmup_ratio at t = 0, rising linearly to 1 at
  // warmup_iters, then the schedule alone.
  o.schedule = {.kind = LrSchedule::Kind::poly, .power = 0.9, .max_iter = 10, .warmup_iters = 4, .warmup_ratio = 0.2};
  EXPECT_DOUBLE_EQ(lr_at(o, 0), 0.1 * 0.2);
  EXPECT_DOUBLE_EQ(lr_at(o, 2), 0.1 * std::pow(0.8, 0.9) * 0.6);
  EXPECT_DOUBLE_EQ(lr_at(o, 4), 0.1 * std::pow(0.6, 0.9));
  o.schedule = {.kind = LrSchedule::Kind::constant, .warmup_iters = 10, .warmup_ratio = 0.0};
  EXPECT_DOUBLE_EQ(lr_at(o, 0), 0.0);
  EXPECT_DOUBLE_EQ(lr_at(o, 5), 0.05);
  EXPECT_DOUBLE_EQ(lr_at(o, 10), 0.1);
  // The optimizer applies the schedule: momentum 0 and gradient 1 move p by lr(t).
  Tensor p = leaf({0.0});
  Sgd opt({{.name = "all", .params = {{"p", p}}}},
          {.lr = 1.0, .momentum = 0.0, .schedule = {.kind = LrSchedule::Kind::step, .gamma = 0.5, .step_size = 1}});
  double expected = 0.0;
  for (int t = 0; t < 3; ++t) {
    opt.zero_grad();
    sum(p).backward();
    opt.step();
    expected -= std::pow(0.5, t);
    EXPECT_DOUBLE_EQ(p.item<double>(), expected);
  }
}

TEST(Sgd, ClipsTheGlobalGradientNorm) {
  Tensor a = leaf({0.0}), b = leaf({0.0});
  Sgd opt({{.name = "all", .params = {{"a", a}, {"b", b}}}},
          {.lr = 1.0, .momentum = 0.0, .max_grad_norm = 1.0});
  // Gradients (3) and (4): global norm 5 -> scaled by 1/(5 + 1e-6).
  add(mul(sum(a), 3.0), mul(sum(b), 4.0)).backward();
  opt.step();
  EXPECT_DOUBLE_EQ(opt.last_grad_norm(), 5.0);
  EXPECT_NEAR(a.item<double>(), -3.0 / (5.0 + 1e-6), 1e-15);
  EXPECT_NEAR(b.item<double>(), -4.0 / (5.0 + 1e-6), 1e-15);
  // Below the limit nothing is scaled.
  Sgd loose({{.name = "all", .params = {{"a", a}}}}, {.lr = 1.0, .momentum = 0.0, .max_grad_norm = 10.0});
  loose.zero_grad();
  mul(sum(a), 3.0).backward();
  const double before = a.item<double>();
  loose.step();
  EXPECT_DOUBLE_EQ(a.item<double>(), before - 3.0);
}

TEST(Sgd, StepsInPlaceAndZeroGradKeepsBuffers) {
  Tensor w = leaf({1.0, 2.0});
  Sgd opt({{.name = "all", .params = {{"w", w}}}}, {.lr = 0.1, .momentum = 0.9});
  sum(mul(w, w)).backward();
  const void* param_data = w.raw_data();
  const void* grad_data = w.grad().raw_data();
  opt.step();
  opt.zero_grad();
  EXPECT_EQ(w.grad().raw_data(), grad_data);
  for (double g : w.grad().to_vector<double>()) EXPECT_EQ(g, 0.0);
  sum(mul(w, w)).backward();
  opt.step();
  EXPECT_EQ(w.raw_data(), param_data);
  EXPECT_EQ(w.grad().raw_data(), grad_data);
}

TEST(Sgd, StateRoundTripContinuesTheSameTrajectory) {
  Tensor w1 = leaf({1.0, -0.5}), b1 = leaf({0.25});
  const SgdOptions o{.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3};
  Sgd a(alex_param_groups({{"l.weight", w1}, {"l.bias", b1}}), o);
  for (int s = 0; s < 2; ++s) {
    a.zero_grad();
    backward_toy(w1, b1);
    a.step();
  }
  const auto state = a.state();
  EXPECT_EQ(state.count("momentum_buffer.l.weight"), 1u);
  EXPECT_EQ(state.at("iteration").item<int64_t>(), 2);
  Tensor w2 = w1.detach().clone().set_requires_grad(true);
  Tensor b2 = b1.detach().clone().set_requires_grad(true);
  Sgd b(alex_param_groups({{"l.weight", w2}, {"l.bias", b2}}), {.lr = 99.0, .momentum = 0.9, .weight_decay = 1e-3});
  b.load_state(state);
  EXPECT_EQ(b.base_lr(), 0.05);
  for (auto [opt, w, bias] : {std::tuple{&a, w1, b1}, std::tuple{&b, w2, b2}}) {
    opt->zero_grad();
    backward_toy(w, bias);
    opt->step();
  }
  EXPECT_EQ(w1.to_vector<double>(), w2.to_vector<double>());
  EXPECT_EQ(b1.to_vector<double>(), b2.to_vector<double>());
  auto bad = state;
  bad["momentum_buffer.l.weight"] = Tensor::zeros({3}, DType::f64);
  EXPECT_THROW(b.load_state(bad), Error);
  bad.erase("iteration");
  EXPECT_THROW(b.load_state(bad), Error);
}

TEST(Sgd, ArgumentErrors) {
  Tensor w = leaf({1.0});
  EXPECT_THROW(Sgd({{.name = "g", .params = {{"w", w}, {"w", w}}}}, {}), Error);
  EXPECT_THROW(Sgd({{.name = "g", .params = {{"w", w}}}}, {.lr = -1.0}), Error);
  EXPECT_THROW(Sgd({{.name = "g", .params = {{"w", w}}}},
                   {.schedule = {.kind = LrSchedule::Kind::poly, .max_iter = 0}}), Error);
}

TEST(SgdCuda, MatchesCpuTrajectoryWithClipping) {
  CBST_REQUIRE_CUDA();
  std::vector<std::vector<float>> results;
  for (Device dev : {Device::cpu(), Device::cuda()}) {
    Generator gen(5);
    Tensor w = rand_uniform({300}, -1, 1, DType::f32, Device::cpu(), &gen).to(dev).set_requires_grad(true);
    Tensor b = rand_uniform({7}, -1, 1, DType::f32, Device::cpu(), &gen).to(dev).set_requires_grad(true);
    Sgd opt(alex_param_groups({{"x.weight", w}, {"x.bias", b}}),
            {.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4, .max_grad_norm = 2.0});
    for (int s = 0; s < 3; ++s) {
      opt.zero_grad();
      add(sum(mul(w, w)), mul(sum(b), 3.0)).backward();
      opt.step();
    }
    results.push_back(w.to(Device::cpu()).to_vector<float>());
  }
  // f32 element-wise updates; only the clipping norm's summation order differs.
  for (size_t i = 0; i < results[0].size(); ++i) EXPECT_NEAR(results[1][i], results[0][i], 1e-6);
}

}  // namespace
}  // namespace cbst
