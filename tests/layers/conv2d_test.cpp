// conv2d: forward against a direct convolution loop, backward against finite differences
// (f64, CPU), CPU/CUDA parity of the output and all gradients, argument errors, the module.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "engine/gradcheck.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "layers/conv2d.h"
#include "tests/support/expect_close.h"

namespace cbst {
namespace {

using testing::error_of;
using testing::identical;

// One table of cases drives the direct-loop, gradcheck and CUDA parity tests.
struct ConvCase {
  std::string name;
  int64_t n, ci, h, w, co, kh, kw;
  Conv2dOptions o;
  bool bias = true;
};

std::vector<ConvCase> conv_cases() {
  return {
      {"Basic3x3Pad1", 2, 3, 7, 6, 4, 3, 3, {.stride = 1, .pad = 1, .dilation = 1}},
      {"NoBias", 1, 2, 5, 5, 3, 3, 3, {.stride = 1, .pad = 1, .dilation = 1}, false},
      {"NoPadding", 2, 2, 6, 7, 3, 3, 3, {.stride = 1, .pad = 0, .dilation = 1}},
      {"Strided2", 2, 3, 9, 8, 2, 3, 3, {.stride = 2, .pad = 1, .dilation = 1}},
      {"Dilated2", 1, 3, 9, 9, 4, 3, 3, {.stride = 1, .pad = 2, .dilation = 2}},
      {"Dilated3Strided2", 2, 2, 11, 10, 3, 3, 3, {.stride = 2, .pad = 1, .dilation = 3}},
      {"Pointwise1x1", 2, 5, 4, 3, 6, 1, 1, {.stride = 1, .pad = 0, .dilation = 1}},
      {"Pointwise1x1Strided", 1, 3, 5, 5, 2, 1, 1, {.stride = 2, .pad = 0, .dilation = 1}},
      {"NonSquareKernel2x3", 1, 2, 6, 7, 3, 2, 3, {.stride = 1, .pad = 1, .dilation = 1}},
      {"Fc6Like7x7", 1, 4, 7, 7, 5, 7, 7, {.stride = 1, .pad = 0, .dilation = 1}},
      {"LargePadding", 1, 2, 3, 3, 2, 3, 3, {.stride = 1, .pad = 3, .dilation = 1}},
      // Output rows 0, 1 and 5 see only padding (the CPU skips them: FCN8s's padding 100).
      {"PaddingPastTheReachStrided", 1, 2, 4, 5, 3, 3, 3, {.stride = 2, .pad = 5, .dilation = 1}},
      // Stride 3 on a map that 3 divides in neither direction (the CPU's im2col reads its 9
      // phases, padded to 4×4 each).
      {"Strided3Dilated2", 2, 2, 10, 11, 3, 3, 3, {.stride = 3, .pad = 2, .dilation = 2}},
      // Taps that reach only a few rows of the map (ResNet-38's dilation 12 on 16×16).
      {"DilatedBeyondTheMap", 1, 3, 6, 5, 2, 3, 3, {.stride = 1, .pad = 4, .dilation = 4}},
      {"DilatedStridedPadded", 2, 2, 7, 6, 2, 3, 3, {.stride = 2, .pad = 3, .dilation = 3}},
      // Output as wide as the input (im2col copies such a tap's rows in one run), while the
      // side taps miss the map entirely: their columns must come out all zero.
      {"SameWidthTapsPastTheEdge", 1, 2, 4, 3, 2, 3, 3, {.stride = 1, .pad = 4, .dilation = 4}},
  };
}

struct ConvInputs {
  Tensor x, w, b;
};

ConvInputs make_inputs(const ConvCase& c, DType dtype, uint64_t seed) {
  Generator gen(seed);
  ConvInputs in;
  in.x = rand_uniform({c.n, c.ci, c.h, c.w}, -1, 1, dtype, Device::cpu(), &gen);
  in.w = rand_uniform({c.co, c.ci, c.kh, c.kw}, -1, 1, dtype, Device::cpu(), &gen);
  if (c.bias) in.b = rand_uniform({c.co}, -1, 1, dtype, Device::cpu(), &gen);
  return in;
}

// The definition, written as directly as possible (f64).
Tensor direct_conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& o) {
  const int64_t n = x.size(0), ci = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t co = w.size(0), kh = w.size(2), kw = w.size(3);
  const int64_t ho = (h + 2 * o.pad - o.dilation * (kh - 1) - 1) / o.stride + 1;
  const int64_t wo = (wd + 2 * o.pad - o.dilation * (kw - 1) - 1) / o.stride + 1;
  const auto xv = x.to(DType::f64).to_vector<double>(), wv = w.to(DType::f64).to_vector<double>();
  const auto bv = b.defined() ? b.to(DType::f64).to_vector<double>() : std::vector<double>(co, 0.0);
  std::vector<double> y(size_t(n * co * ho * wo));
  for (int64_t in = 0; in < n; ++in)
    for (int64_t oc = 0; oc < co; ++oc)
      for (int64_t i = 0; i < ho; ++i)
        for (int64_t j = 0; j < wo; ++j) {
          double acc = bv[oc];
          for (int64_t c = 0; c < ci; ++c)
            for (int64_t p = 0; p < kh; ++p)
              for (int64_t q = 0; q < kw; ++q) {
                const int64_t r = i * o.stride - o.pad + p * o.dilation;
                const int64_t s = j * o.stride - o.pad + q * o.dilation;
                if (r < 0 || r >= h || s < 0 || s >= wd) continue;
                acc += wv[((oc * ci + c) * kh + p) * kw + q] * xv[((in * ci + c) * h + r) * wd + s];
              }
          y[((in * co + oc) * ho + i) * wo + j] = acc;
        }
  return Tensor::from_vector<double>(y, {n, co, ho, wo});
}

class Conv2dCase : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dCase, ForwardMatchesDirectLoop) {
  const ConvCase& c = GetParam();
  for (DType dt : {DType::f64, DType::f32}) {
    const ConvInputs in = make_inputs(c, dt, 5);
    const Tensor y = conv2d(in.x, in.w, in.b, c.o);
    // f64: only summation order differs (≤ Ci·kh·kw terms of size ≤ 1). f32: 24-bit mantissa.
    const testing::Tolerance tol = dt == DType::f64 ? testing::Tolerance{1e-12, 1e-12}
                                                    : testing::Tolerance{1e-5, 1e-5};
    CBST_EXPECT_CLOSE(c.name + " " + dtype_name(dt), y, direct_conv2d(in.x, in.w, in.b, c.o),
                      tol.atol, tol.rtol);
  }
}

TEST_P(Conv2dCase, BackwardMatchesFiniteDifferences) {
  const ConvCase& c = GetParam();
  ConvInputs in = make_inputs(c, DType::f64, 42);
  in.x.set_requires_grad(true);
  in.w.set_requires_grad(true);
  std::vector<Tensor> inputs = {in.x, in.w};
  if (c.bias) inputs.push_back(in.b.set_requires_grad(true));
  const Conv2dOptions o = c.o;
  auto f = [o](const std::vector<Tensor>& v) {
    return conv2d(v[0], v[1], v.size() > 2 ? v[2] : Tensor(), o);
  };
  // conv2d is bilinear, so central differences are exact up to rounding (~1e-16/eps).
  GradcheckOptions opts;
  opts.eps = 1e-6;
  opts.tol = 1e-6;
  const GradcheckResult r = gradcheck(f, inputs, opts);
  std::printf("[ gradcheck] conv2d %s: %s\n", c.name.c_str(), r.report.c_str());
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_GT(r.checked, 0);
}

INSTANTIATE_TEST_SUITE_P(Layers, Conv2dCase, ::testing::ValuesIn(conv_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(Conv2d, OnlyInputsThatRequireGradGetGradients) {
  Generator gen(3);
  Tensor x = rand_uniform({1, 2, 4, 4}, -1, 1, DType::f64, Device::cpu(), &gen);
  Tensor w = rand_uniform({3, 2, 3, 3}, -1, 1, DType::f64, Device::cpu(), &gen);
  Tensor b = rand_uniform({3}, -1, 1, DType::f64, Device::cpu(), &gen);
  w.set_requires_grad(true);
  sum(conv2d(x, w, b, {.pad = 1})).backward();
  EXPECT_TRUE(w.grad().defined());
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(b.grad().defined());
}

TEST(Conv2d, BackwardAccumulatesAcrossUses) {
  // Fan-out: the same weight used twice receives the sum of both gradients.
  Generator gen(4);
  Tensor x = rand_uniform({1, 2, 5, 5}, -1, 1, DType::f64, Device::cpu(), &gen);
  Tensor w = rand_uniform({2, 2, 3, 3}, -1, 1, DType::f64, Device::cpu(), &gen);
  w.set_requires_grad(true);
  sum(conv2d(x, w, Tensor(), {.pad = 1})).backward();
  const Tensor once = w.grad().clone();
  w.zero_grad();
  sum(add(conv2d(x, w, Tensor(), {.pad = 1}), conv2d(x, w, Tensor(), {.pad = 1}))).backward();
  CBST_EXPECT_CLOSE("twice", w.grad(), mul(once, 2.0), 1e-12, 1e-12);
}



TEST(Conv2d, WrongChannelCountNamesBothShapes) {
  const Tensor x = Tensor::zeros({1, 3, 8, 8}), w = Tensor::zeros({4, 5, 3, 3});
  const std::string m = error_of([&] { conv2d(x, w, Tensor(), {}); });
  EXPECT_NE(m.find("[1, 3, 8, 8]"), std::string::npos) << m;
  EXPECT_NE(m.find("[4, 5, 3, 3]"), std::string::npos) << m;
}

TEST(Conv2d, ArgumentErrorsAreReported) {
  const Tensor x = Tensor::zeros({1, 3, 8, 8}), w = Tensor::zeros({4, 3, 3, 3});
  EXPECT_NE(error_of([&] { conv2d(x, w, Tensor::zeros({5}), {}); }).find("[5]"), std::string::npos);
  EXPECT_NE(error_of([&] { conv2d(Tensor::zeros({3, 8, 8}), w, Tensor(), {}); }).find("[3, 8, 8]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { conv2d(Tensor::zeros({1, 3, 2, 2}), w, Tensor(), {}); }).find("too small"),
            std::string::npos);
  EXPECT_NE(error_of([&] { conv2d(x, w, Tensor(), {.stride = 0}); }).find("stride"), std::string::npos);
  EXPECT_NE(error_of([&] { conv2d(x.to(DType::f64), w, Tensor(), {}); }).find("dtype"),
            std::string::npos);
  EXPECT_NE(error_of([&] { conv2d(x.to(DType::i32), w.to(DType::i32), Tensor(), {}); }).find("floating"),
            std::string::npos);
}

TEST(Conv2d, GpuTensorWithoutAGpuIsAClearError) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present; the parity tests cover it";
  const std::string m = error_of([] {
    conv2d(Tensor::zeros({1, 1, 3, 3}, DType::f32, Device::cuda()),
           Tensor::zeros({1, 1, 3, 3}, DType::f32, Device::cuda()), Tensor(), {});
  });
  EXPECT_FALSE(m.empty());
}

TEST(Conv2dModule, HasNamedParametersAndKaimingInit) {
  Conv2d conv(Conv2dParams{.in_channels = 16, .out_channels = 32, .kernel = 3, .pad = 1});
  const NamedTensors p = conv.named_parameters();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].first, "weight");
  EXPECT_EQ(p[0].second.shape(), (Shape{32, 16, 3, 3}));
  EXPECT_EQ(p[1].first, "bias");
  EXPECT_EQ(p[1].second.shape(), (Shape{32}));
  EXPECT_TRUE(conv.weight().requires_grad());
  // Kaiming normal: std √(2 / fan_in), fan_in = 16·9. 4608 samples: the sample std is within
  // a few percent of the target.
  const Tensor w = conv.weight().detach().to(DType::f64);
  const double std_dev = std::sqrt(mean(mul(w, w)).item<double>());
  EXPECT_NEAR(std_dev, std::sqrt(2.0 / 144.0), 0.05 * std::sqrt(2.0 / 144.0));
  EXPECT_EQ(sum(abs(conv.bias().detach())).item<float>(), 0.0f);
  const Tensor y = conv(Tensor::ones({2, 16, 9, 7}));
  EXPECT_EQ(y.shape(), (Shape{2, 32, 9, 7}));
}

TEST(Conv2dModule, WithoutBiasHasOnlyAWeight) {
  Conv2d conv(Conv2dParams{.in_channels = 4, .out_channels = 8, .kernel = 3, .pad = 2,
                           .dilation = 2, .bias = false});
  EXPECT_EQ(conv.named_parameters().size(), 1u);
  EXPECT_EQ(conv(Tensor::ones({1, 4, 10, 10})).shape(), (Shape{1, 8, 10, 10}));
}

// ---- CUDA parity

struct ConvRun {
  Tensor y;
  std::vector<Tensor> grads;  // x, w, b
};

ConvRun run_case(const ConvCase& c, Device d) {
  const ConvInputs in = make_inputs(c, DType::f32, 9);
  std::vector<Tensor> v = {in.x, in.w, in.b};
  for (Tensor& t : v)
    if (t.defined()) t = t.to(d).set_requires_grad(true);
  ConvRun r;
  r.y = conv2d(v[0], v[1], v[2], c.o);
  Generator gen(17);
  const Tensor weights = rand_uniform(r.y.shape(), -1, 1, DType::f32, Device::cpu(), &gen).to(d);
  sum(mul(r.y, weights)).backward();
  for (const Tensor& t : v) r.grads.push_back(t.defined() ? t.grad() : Tensor());
  return r;
}

void expect_parity(const ConvCase& c, testing::Tolerance tol) {
  const ConvRun cpu = run_case(c, Device::cpu());
  const ConvRun gpu = run_case(c, Device::cuda());
  EXPECT_TRUE(testing::close_result(c.name + " y", gpu.y, cpu.y, tol));
  const char* names[] = {" dx", " dw", " db"};
  for (size_t i = 0; i < 3; ++i) {
    if (cpu.grads[i].defined()) {
      EXPECT_TRUE(testing::close_result(c.name + names[i], gpu.grads[i], cpu.grads[i], tol));
    }
  }
}

class Conv2dCudaCase : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dCudaCase, MatchesCpuForwardAndBackwardInStrictFp32) {
  CBST_REQUIRE_CUDA();
  set_tf32_enabled(false);
  // Strict fp32 on both sides; only the summation order differs (sums of ≤ a few hundred
  // terms of magnitude ≤ 1, each rounded at 2⁻²⁴).
  expect_parity(GetParam(), {.atol = 1e-4, .rtol = 1e-4});
  set_tf32_enabled(true);
}

TEST_P(Conv2dCudaCase, MatchesCpuWithTf32) {
  CBST_REQUIRE_CUDA();
  set_tf32_enabled(true);
  // TF32 keeps 10 mantissa bits (relative rounding 2⁻¹¹ ≈ 5e-4 per product); over sums of up
  // to ~200 terms of magnitude ≤ 1 the absolute error stays below ~2e-2.
  expect_parity(GetParam(), {.atol = 3e-2, .rtol = 1e-2});
}

INSTANTIATE_TEST_SUITE_P(Layers, Conv2dCudaCase, ::testing::ValuesIn(conv_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(Conv2dCuda, DeterministicModeIsBitReproducible) {
  CBST_REQUIRE_CUDA();
  set_deterministic(true);
  const ConvCase c{"Det", 2, 32, 17, 17, 32, 3, 3, {.stride = 1, .pad = 2, .dilation = 2}};
  const ConvRun a = run_case(c, Device::cuda());
  const ConvRun b = run_case(c, Device::cuda());
  set_deterministic(false);
  EXPECT_TRUE(identical(a.y, b.y)) << "y";
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(identical(a.grads[i], b.grads[i])) << "grad";
  }
}

TEST(Conv2dCuda, ModuleMovedToCudaMatchesCpu) {
  CBST_REQUIRE_CUDA();
  set_tf32_enabled(false);
  Conv2d conv(Conv2dParams{.in_channels = 8, .out_channels = 16, .kernel = 3, .pad = 1});
  Generator gen(2);
  const Tensor x = rand_uniform({2, 8, 12, 10}, -1, 1, DType::f32, Device::cpu(), &gen);
  const Tensor ref = conv(x);
  conv.to(Device::cuda());
  // Strict fp32, 72-term sums.
  CBST_EXPECT_CLOSE("module", conv(x.to(Device::cuda())), ref, 1e-4, 1e-4);
  set_tf32_enabled(true);
}

}  // namespace
}  // namespace cbst
