// Every differentiable basic op against central finite differences, in f64 on the CPU.
#include <gtest/gtest.h>

#include "engine/autograd.h"
#include "engine/gradcheck.h"
#include "tests/engine/op_cases.h"

namespace cbst {
namespace {

class OpGradcheck : public ::testing::TestWithParam<testing::OpCase> {};

TEST_P(OpGradcheck, BackwardMatchesFiniteDifferences) {
  const testing::OpCase& c = GetParam();
  const std::vector<Tensor> inputs = testing::make_inputs(c, DType::f64, 42);
  // eps 1e-6 in f64: truncation error ~eps² and rounding ~1e-16/eps, both far below 1e-6.
  const GradcheckResult r = gradcheck(c.fn, inputs, {.eps = 1e-6, .tol = 1e-6});
  std::printf("[ gradcheck] %s: %s\n", c.name.c_str(), r.report.c_str());
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_GT(r.checked, 0);
}

INSTANTIATE_TEST_SUITE_P(Engine, OpGradcheck, ::testing::ValuesIn(testing::op_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(Gradcheck, DetectsAWrongBackward) {
  // A function whose recorded backward is deliberately wrong (gradient of 3x instead of 2x).
  auto wrong = [](const std::vector<Tensor>& x) {
    const Tensor y = mul(x[0], 2.0).detach();
    return record("wrong_double", y, {x[0]},
                  [](const Tensor& g) { return std::vector<Tensor>{mul(g, 3.0)}; });
  };
  Tensor x = rand_uniform({4}, -1, 1, DType::f64);
  x.set_requires_grad(true);
  const GradcheckResult r = gradcheck(wrong, {x});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.report.find("analytic"), std::string::npos) << r.report;
  EXPECT_GT(r.worst_fraction, 1.0);
}

TEST(Gradcheck, RefusesNonDoubleInputs) {
  Tensor x = Tensor::ones({2});
  x.set_requires_grad(true);
  EXPECT_THROW(gradcheck([](const std::vector<Tensor>& v) { return mul(v[0], 2.0); }, {x}), Error);
}

}  // namespace
}  // namespace cbst
