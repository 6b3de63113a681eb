// conv_transpose2d: forward against a direct scatter loop, backward against finite
// differences (f64, CPU), FCN's bilinear upsampling, CPU/CUDA parity, argument errors.
#include <gtest/gtest.h>

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "engine/gradcheck.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "layers/conv_transpose2d.h"
#include "tests/support/expect_close.h"

namespace cbst {
namespace {

struct DeconvCase {
  std::string name;
  int64_t n, ci, h, w, co, k;
  ConvTranspose2dOptions o;
  bool bias = true;
};

std::vector<DeconvCase> deconv_cases() {
  return {
      {"Stride1", 2, 3, 4, 5, 2, 3, {.stride = 1, .pad = 0}},
      {"Stride1Pad1", 1, 2, 5, 4, 3, 3, {.stride = 1, .pad = 1}},
      {"Stride2Pad1", 2, 3, 4, 3, 2, 3, {.stride = 2, .pad = 1}},
      {"Stride2OutputPadding1", 1, 2, 3, 4, 3, 3, {.stride = 2, .pad = 1, .output_padding = 1}},
      {"Dilated2", 1, 2, 4, 4, 2, 3, {.stride = 1, .pad = 1, .dilation = 2}},
      {"Fcn4x4Stride2", 1, 3, 5, 4, 3, 4, {.stride = 2}, false},
      {"Fcn16x16Stride8", 1, 2, 2, 3, 2, 16, {.stride = 8}, false},
  };
}

struct Inputs {
  Tensor x, w, b;
};

Inputs make_inputs(const DeconvCase& c, DType dt, uint64_t seed) {
  Generator gen(seed);
  Inputs in;
  in.x = rand_uniform({c.n, c.ci, c.h, c.w}, -1, 1, dt, Device::cpu(), &gen);
  in.w = rand_uniform({c.ci, c.co, c.k, c.k}, -1, 1, dt, Device::cpu(), &gen);
  if (c.bias) in.b = rand_uniform({c.co}, -1, 1, dt, Device::cpu(), &gen);
  return in;
}

// The definition: every input pixel scatters a weighted copy of the kernel (f64).
Tensor direct_conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b,
                               const ConvTranspose2dOptions& o) {
  const int64_t n = x.size(0), ci = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t co = w.size(1), k = w.size(2);
  const int64_t ho = (h - 1) * o.stride - 2 * o.pad + o.dilation * (k - 1) + o.output_padding + 1;
  const int64_t wo = (wd - 1) * o.stride - 2 * o.pad + o.dilation * (k - 1) + o.output_padding + 1;
  const auto xv = x.to(DType::f64).to_vector<double>(), wv = w.to(DType::f64).to_vector<double>();
  std::vector<double> y(size_t(n * co * ho * wo), 0.0);
  for (int64_t in = 0; in < n; ++in)
    for (int64_t c = 0; c < ci; ++c)
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < wd; ++j)
          for (int64_t oc = 0; oc < co; ++oc)
            for (int64_t p = 0; p < k; ++p)
              for (int64_t q = 0; q < k; ++q) {
                const int64_t r = i * o.stride - o.pad + p * o.dilation;
                const int64_t s = j * o.stride - o.pad + q * o.dilation;
                if (r < 0 || r >= ho || s < 0 || s >= wo) continue;
                y[((in * co + oc) * ho + r) * wo + s] +=
                    xv[((in * ci + c) * h + i) * wd + j] * wv[((c * co + oc) * k + p) * k + q];
              }
  if (b.defined()) {
    const auto bv = b.to(DType::f64).to_vector<double>();
    for (int64_t in = 0; in < n; ++in)
      for (int64_t oc = 0; oc < co; ++oc)
        for (int64_t p = 0; p < ho * wo; ++p) y[size_t((in * co + oc) * ho * wo + p)] += bv[oc];
  }
  return Tensor::from_vector<double>(y, {n, co, ho, wo});
}

class ConvTranspose2dCase : public ::testing::TestWithParam<DeconvCase> {};

TEST_P(ConvTranspose2dCase, ForwardMatchesDirectLoop) {
  const DeconvCase& c = GetParam();
  const Inputs in = make_inputs(c, DType::f64, 5);
  // Only the summation order differs from the loop.
  CBST_EXPECT_CLOSE(c.name, conv_transpose2d(in.x, in.w, in.b, c.o),
                    direct_conv_transpose2d(in.x, in.w, in.b, c.o), 1e-12, 1e-12);
}

TEST_P(ConvTranspose2dCase, BackwardMatchesFiniteDifferences) {
  const DeconvCase& c = GetParam();
  Inputs in = make_inputs(c, DType::f64, 42);
  std::vector<Tensor> inputs = {in.x.set_requires_grad(true), in.w.set_requires_grad(true)};
  if (c.bias) inputs.push_back(in.b.set_requires_grad(true));
  const ConvTranspose2dOptions o = c.o;
  auto f = [o](const std::vector<Tensor>& v) {
    return conv_transpose2d(v[0], v[1], v.size() > 2 ? v[2] : Tensor(), o);
  };
  GradcheckOptions opts;
  // Bilinear in (x, w): central differences are exact up to rounding (~1e-16/eps).
  opts.eps = 1e-6;
  opts.tol = 1e-6;
  const GradcheckResult r = gradcheck(f, inputs, opts);
  std::printf("[ gradcheck] conv_transpose2d %s: %s\n", c.name.c_str(), r.report.c_str());
  EXPECT_TRUE(r.ok) << r.report;
}

INSTANTIATE_TEST_SUITE_P(Layers, ConvTranspose2dCase, ::testing::ValuesIn(deconv_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(ConvTranspose2d, OutputShapesFollowTorch) {
  const Tensor x = Tensor::zeros({1, 4, 7, 9});
  EXPECT_EQ(conv_transpose2d(x, Tensor::zeros({4, 2, 4, 4}), Tensor(), {.stride = 2}).shape(),
            (Shape{1, 2, 16, 20}));
  EXPECT_EQ(conv_transpose2d(x, Tensor::zeros({4, 2, 16, 16}), Tensor(), {.stride = 8}).shape(),
            (Shape{1, 2, 64, 80}));
  EXPECT_EQ(conv_transpose2d(x, Tensor::zeros({4, 2, 3, 3}), Tensor(),
                             {.stride = 2, .pad = 1, .output_padding = 1}).shape(),
            (Shape{1, 2, 14, 18}));
}

TEST(ConvTranspose2d, BilinearKernelUpsamplesAConstantToTheSameConstant) {
  // FCN's fixed ×2 upscore: taps (¼, ¾, ¾, ¼) per axis; away from the border every output
  // pixel receives one ¼ and one ¾ tap from each axis, so a constant image stays constant.
  ConvTranspose2d up(ConvTranspose2dParams{.in_channels = 2, .out_channels = 2, .kernel = 4,
                                           .stride = 2, .bilinear = true, .trainable = false},
                     DType::f64);
  EXPECT_FALSE(up.weight().requires_grad());
  EXPECT_EQ(up.named_parameters().size(), 1u);
  const Tensor y = up(Tensor::full({1, 2, 5, 6}, 3.0, DType::f64));
  ASSERT_EQ(y.shape(), (Shape{1, 2, 12, 14}));
  const Tensor interior = y.narrow(2, 2, 8).narrow(3, 2, 10);
  CBST_EXPECT_CLOSE("interior", interior, Tensor::full(interior.shape(), 3.0, DType::f64), 1e-12, 0.0);
  // Channels do not mix: the kernel is diagonal in (in, out).
  Tensor x = Tensor::zeros({1, 2, 5, 6}, DType::f64);
  x.narrow(1, 0, 1).fill_(1.0);
  const Tensor y2 = up(x);
  EXPECT_EQ(sum(abs(y2.narrow(1, 1, 1))).item<double>(), 0.0);
}

TEST(ConvTranspose2d, WrongChannelCountNamesBothShapes) {
  std::string m;
  try {
    conv_transpose2d(Tensor::zeros({1, 3, 4, 4}), Tensor::zeros({5, 3, 4, 4}), Tensor(), {.stride = 2});
  } catch (const Error& e) {
    m = e.what();
  }
  EXPECT_NE(m.find("[1, 3, 4, 4]"), std::string::npos) << m;
  EXPECT_NE(m.find("[5, 3, 4, 4]"), std::string::npos) << m;
  EXPECT_THROW(conv_transpose2d(Tensor::zeros({1, 3, 4, 4}), Tensor::zeros({3, 2, 3, 3}), Tensor(),
                                {.stride = 2, .output_padding = 2}),
               Error);
  EXPECT_THROW(conv_transpose2d(Tensor::zeros({1, 3, 4, 4}), Tensor::zeros({3, 2, 3, 3}),
                                Tensor::zeros({3}), {}),
               Error);
}

TEST(ConvTranspose2dModule, KaimingInitAndParameterNames) {
  ConvTranspose2d up(ConvTranspose2dParams{.in_channels = 8, .out_channels = 4, .kernel = 4,
                                           .stride = 2, .bias = true});
  const NamedTensors p = up.named_parameters();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].first, "weight");
  EXPECT_EQ(p[0].second.shape(), (Shape{8, 4, 4, 4}));
  EXPECT_EQ(p[1].first, "bias");
  EXPECT_TRUE(up.weight().requires_grad());
  EXPECT_GT(sum(abs(up.weight().detach())).item<float>(), 0.0f);
  EXPECT_EQ(up(Tensor::ones({2, 8, 3, 3})).shape(), (Shape{2, 4, 8, 8}));
}

// ---- CUDA parity

struct DeconvRun {
  Tensor y;
  std::vector<Tensor> grads;
};

DeconvRun run_case(const DeconvCase& c, Device d) {
  const Inputs in = make_inputs(c, DType::f32, 9);
  std::vector<Tensor> v = {in.x, in.w, in.b};
  for (Tensor& t : v)
    if (t.defined()) t = t.to(d).set_requires_grad(true);
  DeconvRun r;
  r.y = conv_transpose2d(v[0], v[1], v[2], c.o);
  Generator gen(17);
  const Tensor weights = rand_uniform(r.y.shape(), -1, 1, DType::f32, Device::cpu(), &gen).to(d);
  sum(mul(r.y, weights)).backward();
  for (const Tensor& t : v) r.grads.push_back(t.defined() ? t.grad() : Tensor());
  return r;
}

class ConvTranspose2dCudaCase : public ::testing::TestWithParam<DeconvCase> {};

TEST_P(ConvTranspose2dCudaCase, MatchesCpuForwardAndBackwardInStrictFp32) {
  CBST_REQUIRE_CUDA();
  set_tf32_enabled(false);
  const DeconvCase& c = GetParam();
  const DeconvRun cpu = run_case(c, Device::cpu());
  const DeconvRun gpu = run_case(c, Device::cuda());
  set_tf32_enabled(true);
  // Strict fp32 on both sides, sums of at most a few hundred O(1) terms: summation order only.
  const testing::Tolerance tol{.atol = 1e-4, .rtol = 1e-4};
  EXPECT_TRUE(testing::close_result(c.name + " y", gpu.y, cpu.y, tol));
  const char* names[] = {" dx", " dw", " db"};
  for (size_t i = 0; i < 3; ++i) {
    if (cpu.grads[i].defined()) {
      EXPECT_TRUE(testing::close_result(c.name + names[i], gpu.grads[i], cpu.grads[i], tol));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Layers, ConvTranspose2dCudaCase, ::testing::ValuesIn(deconv_cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace cbst
