// bf16 mixed-precision convolutions: the CPU path (the specification) against an f64
// reference on the bf16-rounded operands, the module policy, and (on a GPU) CUDA against CPU.
//
// The tolerance, per output element with reference value z (f64, on the rounded operands):
//   |got − z| ≤ 2^-8·|z| + (1 + 2^-8)·K·2^-24·S + tiny
// where S = Σ|a·b| over the K terms of that element. The products of bf16 values are exact
// in f32 and the f32 sum of K terms is within γ_K·S ≈ K·2^-24·S of the exact sum (Higham,
// §3.1); the result is then rounded once to bf16 (relative error ≤ 2^-8, round to nearest).
// An f32 bias added afterwards adds 2^-24·|y|. "tiny" (2^-126) covers bf16's subnormals,
// where the relative bound does not hold (absolute error ≤ 2^-134).
// Truncating instead of rounding (error up to 2^-7·|z|), rounding twice, or rounding the
// operands wrongly each exceed this bound on some of the thousands of elements checked.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "engine/cuda_context.h"
#include "layers/conv2d.h"
#include "layers/conv_transpose2d.h"
#include "tests/layers/layer_test_util.h"

namespace cbst {
namespace {

struct Bf16Case {
  std::string name;
  int64_t n, ci, h, w, co, k;
  Conv2dOptions o;
};

void PrintTo(const Bf16Case& c, std::ostream* os) { *os << c.name; }

std::vector<Bf16Case> bf16_cases() {
  return {
      {"Pad1", 2, 5, 9, 11, 7, 3, {.stride = 1, .pad = 1, .dilation = 1}},
      {"Dilated", 2, 4, 13, 12, 6, 3, {.stride = 1, .pad = 2, .dilation = 2}},
      {"Strided", 1, 6, 15, 14, 5, 3, {.stride = 2, .pad = 1, .dilation = 1}},
      {"Pointwise", 2, 16, 6, 7, 9, 1, {.stride = 1, .pad = 0, .dilation = 1}},
      {"Wide", 1, 64, 8, 8, 8, 3, {.stride = 1, .pad = 1, .dilation = 1}},
  };
}

Tensor rounded(const Tensor& t) { return t.detach().to(DType::bf16).to(DType::f64); }

// Worst ratio |got − ref| / tol over all elements (≤ 1 passes); prints it. `rounded_abs`:
// the magnitude rounded to bf16 (default |ref|); `bias_abs`: |z| + |b| when an f32 bias was
// added after the rounding (default none).
double worst_ratio(const std::string& name, const Tensor& got, const Tensor& ref, const Tensor& sum_abs,
                   int64_t terms, const Tensor& rounded_abs = Tensor(), const Tensor& bias_abs = Tensor()) {
  const std::vector<double> g = got.to(DType::f64).to_vector<double>(), r = ref.to_vector<double>(),
                            s = sum_abs.to_vector<double>();
  const std::vector<double> m = rounded_abs.defined() ? rounded_abs.to_vector<double>() : std::vector<double>();
  const std::vector<double> a = bias_abs.defined() ? bias_abs.to_vector<double>() : std::vector<double>();
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double magnitude = m.empty() ? std::fabs(r[i]) : m[i];
    const double tol = 0x1p-8 * magnitude + (1 + 0x1p-8) * double(terms) * 0x1p-24 * s[i] +
                       (a.empty() ? 0.0 : 0x1p-24 * a[i]) + 0x1p-126;
    worst = std::max(worst, std::fabs(g[i] - r[i]) / tol);
  }
  std::printf("%s: worst element used %.3f of the tolerance\n", name.c_str(), worst);
  return worst;
}

// The f64 reference of an op bilinear in (x, w) on the bf16-rounded operands under the
// upstream gradient dy (rounded too: the backward rounds it to bf16), and the sums of |terms|
// per element: the same op on absolute values.
struct Reference {
  Tensor y, dx, dw;           // on the rounded operands
  Tensor sum_y, sum_dx, sum_dw;  // Σ|a·b| of each element's terms
};

template <class Op>
Reference f64_reference(const Tensor& x, const Tensor& w, const Tensor& dy, Op op) {
  auto run = [&](Tensor a, Tensor b, const Tensor& g) {
    a.set_requires_grad(true);
    b.set_requires_grad(true);
    const Tensor out = op(a, b);
    out.backward(g);
    return std::array<Tensor, 3>{out.detach(), a.grad(), b.grad()};
  };
  const Tensor x64 = rounded(x), w64 = rounded(w), dy64 = rounded(dy);
  const auto [y, dx, dw] = run(x64, w64, dy64);
  const auto [sy, sdx, sdw] = run(abs(x64).detach(), abs(w64).detach(), abs(dy64));
  return {y, dx, dw, sy, sdx, sdw};
}

class Conv2dBf16Case : public ::testing::TestWithParam<Bf16Case> {};

TEST_P(Conv2dBf16Case, CpuMatchesF64OnTheRoundedOperandsWithinTheDerivedBound) {
  const Bf16Case c = GetParam();
  Generator gen(21);
  Tensor x = randn({c.n, c.ci, c.h, c.w}, 0, 1, DType::f32, Device::cpu(), &gen).set_requires_grad(true);
  Tensor w = randn({c.co, c.ci, c.k, c.k}, 0, 0.5, DType::f32, Device::cpu(), &gen).set_requires_grad(true);
  Tensor b = randn({c.co}, 0, 1, DType::f32, Device::cpu(), &gen).set_requires_grad(true);

  // The mixed-precision convolution as the layers run it: cast, convolve, f32 out.
  const Tensor y = conv2d(x.to(DType::bf16), w.to(DType::bf16), b, c.o);
  ASSERT_EQ(y.dtype(), DType::f32);
  const Tensor dy = randn(y.shape(), 0, 1, DType::f32, Device::cpu(), &gen);
  y.backward(dy);

  const Reference r =
      f64_reference(x, w, dy, [&](const Tensor& a, const Tensor& b) { return conv2d(a, b, Tensor(), c.o); });

  // Forward: y − b must be the bf16 value; compare y against z + b.
  const Tensor b64 = b.detach().to(DType::f64).reshape({1, c.co, 1, 1});
  const int64_t k_fwd = c.ci * c.k * c.k;
  const Tensor ref_y = add(r.y, b64);
  EXPECT_LE(worst_ratio(c.name + " y", y, ref_y, r.sum_y, k_fwd, abs(r.y), add(abs(r.y), abs(b64))), 1.0);
  // Without the bias the output is exactly a bf16 value (rounded once, as cuDNN writes it).
  const Tensor y_nobias = conv2d(x.detach().to(DType::bf16), w.detach().to(DType::bf16), Tensor(), c.o);
  for (float v : y_nobias.to_vector<float>()) ASSERT_EQ(float_bits(v) & 0xFFFF, 0u) << v;

  // Backward data: K = Co·k·k terms at most per input element.
  EXPECT_EQ(x.grad().dtype(), DType::f32);
  EXPECT_LE(worst_ratio(c.name + " dx", x.grad(), r.dx, r.sum_dx, c.co * c.k * c.k), 1.0);
  // Backward filter: K = N·Ho·Wo terms per weight. The master gradient is f32 and holds the
  // bf16-rounded dw exactly.
  EXPECT_EQ(w.grad().dtype(), DType::f32);
  EXPECT_LE(worst_ratio(c.name + " dw", w.grad(), r.dw, r.sum_dw, y.size(0) * y.size(2) * y.size(3)), 1.0);
  for (float v : w.grad().to_vector<float>()) ASSERT_EQ(float_bits(v) & 0xFFFF, 0u) << v;
  // The bias gradient stays f32: the f32 sum of dy, not rounded through bf16.
  CBST_EXPECT_CLOSE(c.name + " db", b.grad(), sum(dy, {0, 2, 3}), .atol = 1e-5, .rtol = 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Layers, Conv2dBf16Case, ::testing::ValuesIn(bf16_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(Conv2dBf16, TransposedConvolutionMatchesF64OnTheRoundedOperands) {
  Generator gen(22);
  const ConvTranspose2dOptions o{.stride = 2, .pad = 1};
  Tensor x = randn({2, 6, 7, 5}, 0, 1, DType::f32, Device::cpu(), &gen).set_requires_grad(true);
  Tensor w = randn({6, 4, 4, 4}, 0, 0.5, DType::f32, Device::cpu(), &gen).set_requires_grad(true);
  const Tensor y = conv_transpose2d(x.to(DType::bf16), w.to(DType::bf16), Tensor(), o);
  ASSERT_EQ(y.dtype(), DType::f32);
  const Tensor dy = randn(y.shape(), 0, 1, DType::f32, Device::cpu(), &gen);
  y.backward(dy);

  const Reference r =
      f64_reference(x, w, dy, [&](const Tensor& a, const Tensor& b) { return conv_transpose2d(a, b, Tensor(), o); });
  // Terms per element: an output sums over Ci·k·k (input channel, tap) pairs at most, an
  // input gradient over Co·k·k, a weight gradient over the N·H·W input pixels.
  EXPECT_LE(worst_ratio("transposed y", y, r.y, r.sum_y, 6 * 16), 1.0);
  EXPECT_LE(worst_ratio("transposed dx", x.grad(), r.dx, r.sum_dx, 4 * 16), 1.0);
  EXPECT_LE(worst_ratio("transposed dw", w.grad(), r.dw, r.sum_dw, 2 * 7 * 5), 1.0);
}

TEST(Conv2dBf16, ModulePolicyCastsInputAndMasterWeightAndKeepsParametersF32) {
  manual_seed(5);
  Sequential net;
  auto conv = net.add("conv", std::make_shared<Conv2d>(Conv2dParams{.in_channels = 3, .out_channels = 4, .kernel = 3, .pad = 1}));
  auto up = net.add("up", std::make_shared<ConvTranspose2d>(ConvTranspose2dParams{.in_channels = 4, .out_channels = 4, .bias = true}));
  EXPECT_EQ(conv->precision(), Precision::f32);
  net.set_precision(Precision::bf16);
  EXPECT_EQ(conv->precision(), Precision::bf16);  // recursive
  EXPECT_EQ(up->precision(), Precision::bf16);

  Generator gen(6);
  const Tensor x = randn({2, 3, 6, 6}, 0, 1, DType::f32, Device::cpu(), &gen);
  const Tensor y = net(x);
  EXPECT_EQ(y.dtype(), DType::f32);
  // The same as the functional ops on explicitly cast operands.
  const Tensor h = conv2d(x.to(DType::bf16), conv->weight().detach().to(DType::bf16), conv->bias().detach(),
                          conv->params().options());
  const Tensor ref = conv_transpose2d(h.to(DType::bf16), up->weight().detach().to(DType::bf16),
                                      up->bias().detach(), up->params().options());
  EXPECT_TRUE(testing::identical(y.detach(), ref));
  // ... and different from f32 (the policy did something).
  net.set_precision(Precision::f32);
  const Tensor y32 = net(x);
  EXPECT_FALSE(testing::identical(y.detach(), y32.detach()));

  sum(y).backward();
  for (const auto& [name, p] : net.named_parameters()) {
    EXPECT_EQ(p.dtype(), DType::f32) << name;
    ASSERT_TRUE(p.grad().defined()) << name;
    EXPECT_EQ(p.grad().dtype(), DType::f32) << name;
  }
  for (const auto& [name, t] : net.state_dict()) EXPECT_EQ(t.dtype(), DType::f32) << name;
}

TEST(Conv2dBf16, PolicyLeavesF64InputsAlone) {
  Conv2d conv(Conv2dParams{.in_channels = 2, .out_channels = 3, .kernel = 3, .pad = 1}, DType::f64);
  conv.set_precision(Precision::bf16);
  const Tensor x = testing::random_input({1, 2, 5, 5}, 7);
  const Tensor y = conv(x);
  EXPECT_EQ(y.dtype(), DType::f64);
  EXPECT_TRUE(testing::identical(y, conv2d(x, conv.weight(), conv.bias(), conv.params().options())));
}

TEST(Conv2dBf16, MixedOperandsAndWrongBiasAreClearErrors) {
  const Tensor x = Tensor::ones({1, 2, 4, 4}).to(DType::bf16);
  const Tensor w32 = Tensor::ones({3, 2, 3, 3});
  std::string msg = testing::error_of([&] { conv2d(x, w32, Tensor()); });
  EXPECT_NE(msg.find("weight dtype f32 differs from input dtype bf16"), std::string::npos) << msg;
  msg = testing::error_of([&] { conv2d(x, w32.to(DType::bf16), Tensor::zeros({3}).to(DType::bf16)); });
  EXPECT_NE(msg.find("a bf16 convolution takes an f32 bias"), std::string::npos) << msg;
  EXPECT_EQ(precision_from_name("bf16"), Precision::bf16);
  msg = testing::error_of([] { precision_from_name("fp16"); });
  EXPECT_NE(msg.find("expected f32 or bf16"), std::string::npos) << msg;
}

// ---- CUDA (skipped without a device): CUDA bf16 against the CPU bf16 path.

// cuDNN and the CPU round the same f32-accumulated values to bf16, but their sums run in
// different orders: the f32 results may differ by 2·γ_K·S before rounding, which after the
// rounding (each side ≤ 2^-8 relative) can flip a value to the neighbouring bf16, one ulp
// = 2^-7 relative. So: rtol 2^-7 + 2^-8 (one flip plus rounding slack), and an atol for
// results that cancel to near zero (≈ K·2^-24·S with S ≲ K·|x||w| ≲ 100 here: 1e-3).
TEST(Conv2dBf16Cuda, ForwardAndBackwardMatchTheCpuBf16Path) {
  CBST_REQUIRE_CUDA();
  for (const Bf16Case& c : bf16_cases()) {
    Generator gen(23);
    const Tensor x = randn({c.n, c.ci, c.h, c.w}, 0, 1, DType::f32, Device::cpu(), &gen).set_requires_grad(true);
    const Tensor w = randn({c.co, c.ci, c.k, c.k}, 0, 0.5, DType::f32, Device::cpu(), &gen).set_requires_grad(true);
    const Tensor b = randn({c.co}, 0, 1, DType::f32, Device::cpu(), &gen).set_requires_grad(true);
    testing::expect_cuda_matches_cpu(
        "bf16 conv2d " + c.name,
        [&](const std::vector<Tensor>& in) { return conv2d(in[0].to(DType::bf16), in[1].to(DType::bf16), in[2], c.o); },
        {x, w, b}, {.atol = 1e-3, .rtol = 0x1p-7 + 0x1p-8});
  }
  Generator gen(24);
  const Tensor x = randn({2, 6, 7, 5}, 0, 1, DType::f32, Device::cpu(), &gen).set_requires_grad(true);
  const Tensor w = randn({6, 4, 4, 4}, 0, 0.5, DType::f32, Device::cpu(), &gen).set_requires_grad(true);
  testing::expect_cuda_matches_cpu(
      "bf16 conv_transpose2d",
      [](const std::vector<Tensor>& in) {
        return conv_transpose2d(in[0].to(DType::bf16), in[1].to(DType::bf16), Tensor(), {.stride = 2, .pad = 1});
      },
      {x, w}, {.atol = 1e-3, .rtol = 0x1p-7 + 0x1p-8});
}

TEST(Conv2dBf16Cuda, CastKernelsGiveTheCpuBits) {
  CBST_REQUIRE_CUDA();
  // Every bf16 pattern widened, and f32 values around every rounding case narrowed.
  std::vector<uint16_t> patterns(65536);
  for (size_t i = 0; i < patterns.size(); ++i) patterns[i] = uint16_t(i);
  std::vector<bf16> all;
  for (uint16_t p : patterns) all.push_back(bf16::from_bits(p));
  const Tensor b = Tensor::from_vector<bf16>(all, {65536});
  const std::vector<float> widened = b.to(Device::cuda()).to(DType::f32).to(Device::cpu()).to_vector<float>();
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(float_bits(widened[i]), uint32_t(i) << 16) << i;
  std::vector<float> f;
  for (uint32_t hi = 0; hi < 0x10000; hi += 7)
    for (uint32_t lo : {0x0000u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu}) {
      const uint32_t u = (hi << 16) | lo;
      float v;
      std::memcpy(&v, &u, 4);
      f.push_back(v);
    }
  const Tensor t = Tensor::from_vector<float>(f, {int64_t(f.size())});
  const std::vector<bf16> gpu = t.to(Device::cuda()).to(DType::bf16).to(Device::cpu()).to_vector<bf16>();
  const std::vector<bf16> cpu = t.to(DType::bf16).to_vector<bf16>();
  for (size_t i = 0; i < cpu.size(); ++i) ASSERT_EQ(gpu[i].bits, cpu[i].bits) << "f32 bits " << float_bits(f[i]);
}

TEST(Conv2dBf16Cuda, Bf16GemmMatchesTheCpuBf16Gemm) {
  CBST_REQUIRE_CUDA();
  Generator gen(25);
  const Tensor a = randn({3, 37, 200}, 0, 1, DType::f32, Device::cpu(), &gen).set_requires_grad(true);
  const Tensor b = randn({3, 29, 200}, 0, 1, DType::f32, Device::cpu(), &gen).set_requires_grad(true);
  // C is f32 on both sides, sums of 200 products of N(0,1)·N(0,1) (S ≈ 130) in different
  // orders: |Δ| ≤ 2·200·2^-24·S ≈ 3e-3. Gradients are rounded to bf16 at the end: one ulp
  // flip, 2^-7 relative.
  testing::expect_cuda_matches_cpu(
      "bf16 matmul",
      [](const std::vector<Tensor>& in) {
        return matmul(in[0].to(DType::bf16), in[1].to(DType::bf16).transpose(-1, -2));
      },
      {a, b}, {.atol = 3e-3, .rtol = 0x1p-7 + 0x1p-8});
}

}  // namespace
}  // namespace cbst
