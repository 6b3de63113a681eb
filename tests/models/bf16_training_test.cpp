// bf16 mixed-precision training of a real model (small-fcn) on the CPU path, against f32.
//
// Tolerances. small-fcn has L = 7 convolutions. Under bf16 each rounds its input, its
// weight and its output to bf16 (relative error ≤ 2^-8 each), so to first order a
// convolution's output moves by at most 3·2^-8 relative; batch norm rescales but does not
// amplify relative errors of a whole channel, ReLU, pooling and upsampling are 1-Lipschitz.
// Worst case, all errors aligned: logits within δ = L·3·2^-8 ≈ 0.082 relative. Softmax
// cross-entropy changes by at most 2·‖Δz‖∞ (its gradient p − onehot has l1 norm ≤ 2), so
//   |loss_bf16 − loss_f32| ≤ 2·δ·max|z|.
// Gradients pass through the same convolutions backwards (dy rounded, dx and dw rounded): a
// relative error of at most ε = 2·δ ≈ 0.16 worst case; independent roundings add in
// quadrature, ≈ √(6L)·2^-8 ≈ 0.025 typically. A gradient with ‖Δg‖ ≤ ε‖g‖ has cosine
// ≥ √(1 − ε²) with the exact one: ≥ 0.987 at the worst-case ε. We ask for cosine > 0.98 for
// the whole update and > 0.95 for each weight tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "layers/sgd.h"
#include "layers/softmax_cross_entropy.h"
#include "models/segmentation_model.h"
#include "tests/models/toy_task.h"
#include "tests/support/expect_close.h"

namespace cbst {
namespace {

using testing::ToyBatch;
using testing::toy_batch;

std::shared_ptr<SegmentationModel> small_fcn(Precision p) {
  manual_seed(3);
  auto m = create_model("small-fcn", {.num_classes = 3, .seed = 1});
  m->set_precision(p);
  m->train();
  return m;
}

double cosine(const Tensor& a, const Tensor& b) {
  const Tensor a64 = a.to(DType::f64).flatten(), b64 = b.to(DType::f64).flatten();
  const double ab = sum(mul(a64, b64)).item<double>();
  const double aa = sum(mul(a64, a64)).item<double>(), bb = sum(mul(b64, b64)).item<double>();
  return ab / std::sqrt(aa * bb);
}

struct StepResult {
  double loss = 0, max_logit = 0;
  std::map<std::string, Tensor> update;  // parameter after − before
};

StepResult one_sgd_step(SegmentationModel& m, const ToyBatch& b) {
  Sgd opt(alex_param_groups(m.named_parameters()), {.lr = 0.01, .momentum = 0.9, .weight_decay = 5e-4});
  std::map<std::string, Tensor> before;
  for (const auto& [name, p] : m.named_parameters()) before[name] = p.detach().clone();
  opt.zero_grad();
  const Tensor logits = m.forward(b.x);
  const Tensor loss = softmax_cross_entropy(logits, b.labels);
  loss.backward();
  opt.step();
  StepResult r;
  r.loss = loss.item<float>();
  r.max_logit = max(abs(logits.detach())).item<float>();
  for (const auto& [name, p] : m.named_parameters()) {
    EXPECT_EQ(p.dtype(), DType::f32) << name << ": master weights stay f32";
    r.update[name] = sub(p.detach(), before[name]);
  }
  return r;
}

TEST(Bf16Training, OneSmallFcnStepAgreesWithF32WithinTheDerivedBounds) {
  const ToyBatch batch = toy_batch();
  auto m32 = small_fcn(Precision::f32);
  auto m16 = small_fcn(Precision::bf16);
  for (const auto& [name, t] : m32->state_dict())
    ASSERT_TRUE(testing::identical(t, m16->state_dict().at(name))) << name << ": same initial weights";
  const StepResult a = one_sgd_step(*m32, batch);
  const StepResult b = one_sgd_step(*m16, batch);

  const double delta = 7 * 3 * 0x1p-8;
  const double loss_tol = 2 * delta * a.max_logit;
  std::printf("[ bf16     ] loss f32 %.6f bf16 %.6f: |diff| %.2e, %.3f of the bound %.3f\n", a.loss, b.loss,
              std::fabs(a.loss - b.loss), std::fabs(a.loss - b.loss) / loss_tol, loss_tol);
  EXPECT_LE(std::fabs(a.loss - b.loss), loss_tol);
  EXPECT_NE(a.loss, b.loss) << "bf16 changed nothing: was the policy applied?";

  std::vector<Tensor> ua, ub;
  double worst = 1;
  std::string worst_name;
  for (const auto& [name, u] : a.update) {
    ua.push_back(u.flatten());
    ub.push_back(b.update.at(name).flatten());
    if (name.find("weight") == std::string::npos || u.dim() != 4) continue;  // conv weights
    const double c = cosine(u, b.update.at(name));
    if (c < worst) worst = c, worst_name = name;
    EXPECT_GT(c, 0.95) << name;
  }
  const double whole = cosine(concat(ua, 0), concat(ub, 0));
  std::printf("[ bf16     ] update cosine bf16 vs f32: whole %.6f, worst conv weight %.6f (%s)\n", whole, worst,
              worst_name.c_str());
  EXPECT_GT(whole, 0.98);
}

TEST(Bf16Training, SmallFcnLearnsTheToyTaskInBf16) {
  const ToyBatch batch = toy_batch();
  auto m = small_fcn(Precision::bf16);
  Sgd opt(alex_param_groups(m->named_parameters()), {.lr = 0.05, .momentum = 0.0, .weight_decay = 0.0});
  double first = 0, last = 0;
  for (int step = 0; step < 40; ++step) {
    opt.zero_grad();
    const Tensor loss = softmax_cross_entropy(m->forward(batch.x), batch.labels);
    EXPECT_EQ(loss.dtype(), DType::f32);
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item<float>();
  }
  std::printf("[ loss     ] small-fcn bf16: %.4f -> %.4f after 40 steps\n", first, last);
  // The f32 test (models_test) asks the same: chance is ln 3 ≈ 1.10, the layout learnable.
  EXPECT_NEAR(first, std::log(3.0), 0.3);
  EXPECT_LT(last, 0.5 * first);
  for (const auto& [name, p] : m->named_parameters()) {
    EXPECT_EQ(p.dtype(), DType::f32) << name;
    if (p.grad().defined()) {
      EXPECT_EQ(p.grad().dtype(), DType::f32) << name;
    }
  }
  for (const auto& [name, t] : m->state_dict()) EXPECT_NE(t.dtype(), DType::bf16) << name;
}

}  // namespace
}  // namespace cbst
