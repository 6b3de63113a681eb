#include <gtest/gtest.h>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "tests/support/expect_close.h"

namespace cbst {
namespace {

Tensor leaf(std::vector<float> v, Shape s) {
  Tensor t = Tensor::from_vector<float>(v, s);
  t.set_requires_grad(true);
  return t;
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor x = leaf({1, 2, 3}, {3});
  sum(mul(x, x)).backward();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{2, 4, 6}));
  sum(mul(x, 3.0)).backward();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{5, 7, 9}));
}

TEST(Autograd, ZeroGradKeepsTheBufferAllocated) {
  Tensor x = leaf({1, 2}, {2});
  sum(mul(x, x)).backward();
  const void* buffer = x.grad().raw_data();
  x.zero_grad();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{0, 0}));
  sum(mul(x, 2.0)).backward();
  EXPECT_EQ(x.grad().raw_data(), buffer) << "the second step must reuse the gradient buffer";
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{2, 2}));
}

TEST(Autograd, FanOutSumsTheBranches) {
  // y = x·x + 2x + x → dy/dx = 2x + 3 (a residual-like fan-out of x into three branches)
  Tensor x = leaf({1, -2}, {2});
  sum(add(add(mul(x, x), mul(x, 2.0)), x)).backward();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{5, -1}));
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = leaf({1}, {1});
  {
    NoGradGuard guard;
    const Tensor y = mul(x, 2.0);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(y.is_leaf());
  }
  EXPECT_TRUE(mul(x, 2.0).requires_grad());
}

TEST(Autograd, NonScalarBackwardNeedsAnExplicitGradient) {
  Tensor x = leaf({1, 2}, {2});
  const Tensor y = mul(x, 3.0);
  EXPECT_THROW(y.backward(), Error);
  y.backward(Tensor::from_vector<float>({1, 10}, {2}));
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{3, 30}));
}

TEST(Autograd, SecondBackwardThroughAFreedGraphIsAClearError) {
  Tensor x = leaf({1, 2}, {2});
  const Tensor loss = sum(exp(x));
  loss.backward();
  try {
    loss.backward();
    FAIL() << "second backward succeeded";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("second time"), std::string::npos) << m;
    EXPECT_NE(m.find("retain_graph"), std::string::npos) << m;
  }
}

TEST(Autograd, RetainGraphAllowsASecondBackward) {
  Tensor x = leaf({0, 1}, {2});
  const Tensor loss = sum(exp(x));
  loss.backward(Tensor(), true);
  loss.backward();
  CBST_EXPECT_CLOSE("2·exp(x)", x.grad(), mul(exp(x.detach()), 2.0), 1e-6, 1e-6);
}

TEST(Autograd, BackwardFreesSavedTensors) {
  Tensor x = leaf({1, 2, 3}, {3});
  std::weak_ptr<Storage> saved;
  Tensor loss;
  {
    const Tensor y = exp(x);  // exp saves its output
    saved = y.impl().storage;
    loss = sum(y);
  }
  EXPECT_FALSE(saved.expired()) << "the graph keeps exp's output alive before backward";
  loss.backward();
  EXPECT_TRUE(saved.expired()) << "backward must free what the graph saved";
}

TEST(Autograd, OnlyLeavesAccumulateAndNonLeavesCannotChangeRequiresGrad) {
  Tensor x = leaf({1}, {1});
  Tensor y = mul(x, 2.0);
  EXPECT_FALSE(y.is_leaf());
  EXPECT_THROW(y.set_requires_grad(false), Error);
  sum(y).backward();
  EXPECT_FALSE(y.grad().defined());
  EXPECT_TRUE(x.grad().defined());
}

TEST(Autograd, GradReadyHookFiresOnceAfterALeafsLastContribution) {
  // loss = Σ (x·w1)·w2 + 3·w1 + stop(blocked). w1 feeds the first node (x·w1) and a later one
  // (3·w1); backward reaches the later one first, so w1's gradient is final only after the
  // first node, after w2's. `blocked` is reachable, but its node passes no gradient to it;
  // `unused` is not in the graph.
  const Tensor x = Tensor::from_vector<float>({1, 2}, {2});
  Tensor w1 = leaf({0.5f, -1}, {2}), w2 = leaf({2, 3}, {2}), blocked = leaf({1}, {1}), unused = leaf({1}, {1});
  std::vector<std::string> calls;
  Tensor w1_grad_when_called;
  set_grad_ready_hook(w1, [&] {
    calls.push_back("w1");
    w1_grad_when_called = w1.grad().clone();
  });
  set_grad_ready_hook(w2, [&] { calls.push_back("w2"); });
  set_grad_ready_hook(blocked, [&] { calls.push_back("blocked"); });
  set_grad_ready_hook(unused, [&] { calls.push_back("unused"); });
  auto loss = [&] {
    const Tensor stopped = record("stop_gradient", Tensor::zeros({1}), {blocked},
                                  [](const Tensor&) { return std::vector<Tensor>{Tensor()}; });
    return add(sum(add(mul(mul(x, w1), w2), mul(w1, 3.0))), sum(stopped));
  };
  for (float pass = 1; pass <= 2; ++pass) {  // accumulating: dL/dw1 = x·w2 + 3 = {5, 9} per pass
    calls.clear();
    loss().backward();
    EXPECT_EQ(calls, (std::vector<std::string>{"w2", "w1"})) << "pass " << pass;
    EXPECT_EQ(w1_grad_when_called.to_vector<float>(), (std::vector<float>{5 * pass, 9 * pass}));
    EXPECT_EQ(w1.grad().to_vector<float>(), w1_grad_when_called.to_vector<float>());
    EXPECT_FALSE(blocked.grad().defined());
  }
  set_grad_ready_hook(w2, nullptr);
  calls.clear();
  loss().backward();
  EXPECT_EQ(calls, (std::vector<std::string>{"w1"})) << "a removed hook is not called";
  EXPECT_THROW(set_grad_ready_hook(mul(w1, 2.0), [] {}), Error);
}

TEST(Autograd, BackwardOnATensorWithoutHistoryIsAnError) {
  EXPECT_THROW(sum(Tensor::ones({2})).backward(), Error);
}

TEST(Autograd, IntegerAndComparisonOutputsAreNotDifferentiable) {
  Tensor x = leaf({1, 2}, {2});
  EXPECT_FALSE(gt(x, 1.0).requires_grad());
  EXPECT_FALSE(argmax(x, 0).requires_grad());
}

}  // namespace
}  // namespace cbst
