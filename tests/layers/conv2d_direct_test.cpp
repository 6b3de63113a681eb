// The CPU convolution's direct kernel (layers/conv2d_direct.h): the kernel against its
// definition (0 + one chain of fused multiply-adds per output, in im2col's row order); conv2d
// forward and backward-data through it against the definition bit for bit and against
// im2col + GEMM (CBST_CPU_CONV_DIRECT=0) to rounding; and where it is not taken.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/random.h"
#include "layers/conv2d.h"
#include "layers/conv_backend.h"
#include "layers/conv2d_direct.h"

namespace cbst {
namespace {

using conv_detail::DirectGeometry;

struct Shape2 {
  int64_t ci, co, h, w, k, pad, dilation;
};

std::vector<float> uniform(size_t n, uint64_t seed) {
  Generator gen(seed);
  std::vector<float> v(n);
  for (float& x : v) x = float(gen.next_below(2001)) / 1000.0f - 1.0f;
  return v;
}

// One sample's convolution (no bias) as the direct kernel defines it: 0 + one chain of fused
// multiply-adds per output, taps in im2col's row order, padding read as 0.
std::vector<float> fma_chain(const std::vector<float>& x, const std::vector<float>& w, const Shape2& s) {
  const int64_t ho = s.h + 2 * s.pad - s.dilation * (s.k - 1), wo = s.w + 2 * s.pad - s.dilation * (s.k - 1);
  std::vector<float> y(size_t(s.co * ho * wo));
  for (int64_t co = 0; co < s.co; ++co)
    for (int64_t oh = 0; oh < ho; ++oh)
      for (int64_t ow = 0; ow < wo; ++ow) {
        float acc = 0.0f;
        int64_t k = 0;
        for (int64_t c = 0; c < s.ci; ++c)
          for (int64_t i = 0; i < s.k; ++i)
            for (int64_t j = 0; j < s.k; ++j, ++k) {
              const int64_t r = oh + i * s.dilation - s.pad, col = ow + j * s.dilation - s.pad;
              const float xv = r >= 0 && r < s.h && col >= 0 && col < s.w ? x[size_t((c * s.h + r) * s.w + col)] : 0.0f;
              acc = std::fma(w[size_t(co * s.ci * s.k * s.k + k)], xv, acc);
            }
        y[size_t((co * ho + oh) * wo + ow)] = 0.0f + acc;
      }
  return y;
}

// Both widths of the kernel: "avx2" keeps it to 256-bit vectors; "1" lets it take its 512-bit
// blocks on a CPU with AVX-512F. Each must give the definition's bits.
TEST(Conv2dDirect, KernelIsTheChainOfFusedMultiplyAddsOfTheDefinition) {
  if (!conv_detail::direct_forward_available()) GTEST_SKIP() << "no AVX2/FMA: the direct kernel is off";
  // Filter counts with and without a remainder of 4, widths with 48-, 24-, 8- and 1-pixel
  // tails, dilation, a 5x5 kernel.
  const std::vector<Shape2> shapes{{3, 16, 20, 37, 3, 1, 1}, {16, 6, 9, 24, 3, 1, 1}, {5, 7, 11, 13, 3, 2, 2},
                                   {2, 3, 7, 30, 5, 2, 1},   {1, 1, 4, 4, 3, 1, 1},   {8, 5, 6, 51, 3, 3, 3},
                                   {4, 8, 5, 83, 3, 1, 1},   {6, 4, 3, 144, 3, 1, 1}};
  for (const char* mode : {"avx2", "1"}) {
    setenv("CBST_CPU_CONV_DIRECT", mode, 1);
    EXPECT_EQ(conv_detail::direct_wide_kernel(),
              std::string(mode) == "1" && __builtin_cpu_supports("avx512f")) << mode;
    for (const Shape2& s : shapes) {
      const int64_t ho = s.h + 2 * s.pad - s.dilation * (s.k - 1), wo = s.w + 2 * s.pad - s.dilation * (s.k - 1);
      const DirectGeometry q{s.ci, s.h, s.w, s.h + 2 * s.pad, s.w + 2 * s.pad, s.co, s.k, s.k, s.pad, s.dilation, ho, wo};
      const std::vector<float> x = uniform(size_t(s.ci * s.h * s.w), 1), w = uniform(size_t(s.co * s.ci * s.k * s.k), 2);
      std::vector<float> padded(size_t(q.ci * q.hp * q.wp)), y(size_t(s.co * ho * wo));
      conv_detail::pad_image(padded.data(), x.data(), q);
      conv_detail::direct_forward_rows(y.data(), padded.data(), w.data(), q, 0, ho);
      const std::vector<float> want = fma_chain(x, w, s);
      int64_t differ = 0;
      for (size_t i = 0; i < want.size(); ++i) differ += std::memcmp(&want[i], &y[i], sizeof(float)) != 0;
      EXPECT_EQ(differ, 0) << mode << ": " << s.ci << "->" << s.co << " at " << s.h << "x" << s.w << ", k " << s.k
                           << ", dilation " << s.dilation;
    }
    unsetenv("CBST_CPU_CONV_DIRECT");
  }
}

// dx of one sample as the direct backward-data kernel defines it: 0 + one chain of fused
// multiply-adds per input pixel over (co, i', j'), the filter turned by 180° (i = k − 1 − i'),
// reading dy padded by dilation·(k − 1) − pad as 0 outside.
std::vector<float> fma_chain_backward(const std::vector<float>& dy, const std::vector<float>& w, const Shape2& s) {
  const int64_t ho = s.h + 2 * s.pad - s.dilation * (s.k - 1), wo = s.w + 2 * s.pad - s.dilation * (s.k - 1);
  const int64_t pad = s.dilation * (s.k - 1) - s.pad;
  std::vector<float> dx(size_t(s.ci * s.h * s.w));
  for (int64_t c = 0; c < s.ci; ++c)
    for (int64_t y = 0; y < s.h; ++y)
      for (int64_t x = 0; x < s.w; ++x) {
        float acc = 0.0f;
        for (int64_t co = 0; co < s.co; ++co)
          for (int64_t i = 0; i < s.k; ++i)
            for (int64_t j = 0; j < s.k; ++j) {
              const int64_t r = y + i * s.dilation - pad, col = x + j * s.dilation - pad;
              const float g = r >= 0 && r < ho && col >= 0 && col < wo ? dy[size_t((co * ho + r) * wo + col)] : 0.0f;
              const float wv = w[size_t(((co * s.ci + c) * s.k + (s.k - 1 - i)) * s.k + (s.k - 1 - j))];
              acc = std::fma(wv, g, acc);
            }
        dx[size_t((c * s.h + y) * s.w + x)] = 0.0f + acc;
      }
  return dx;
}

// Runs `f` with CBST_CPU_CONV_DIRECT set to `direct` ("0": im2col + GEMM only).
template <class F>
auto with_direct(const char* direct, F f) {
  setenv("CBST_CPU_CONV_DIRECT", direct, 1);
  auto out = f();
  unsetenv("CBST_CPU_CONV_DIRECT");
  return out;
}

// Largest |a − b| over max(1, |b|).
double max_relative_gap(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(double(a[i]) - double(b[i])) / std::max(1.0, std::abs(double(b[i]))));
  return worst;
}

// The layers the direct kernel is for: small-fcn's conv1_1 and conv1_2 at the demo's 4x96²,
// conv2_2, small-deeplabv3plus's stem2 and decoder2 (88 channels: chains of 792 forward), a
// dilated block, a 5x5 with a smaller pad, and FCN8s's conv1_1 in miniature (padding 20 on
// 40²: 36 of the 78 output rows see only padding, are skipped and come out 0).
const std::vector<Shape2>& thin_layers() {
  static const std::vector<Shape2> shapes{{3, 16, 96, 96, 3, 1, 1},  {16, 16, 96, 96, 3, 1, 1},
                                          {32, 32, 48, 48, 3, 1, 1}, {24, 32, 48, 48, 3, 1, 1},
                                          {32, 32, 24, 24, 3, 2, 2}, {8, 6, 64, 64, 5, 1, 1},
                                          {88, 32, 48, 48, 3, 1, 1}, {3, 16, 40, 40, 3, 20, 1}};
  return shapes;
}

// The direct kernel's result on 4 samples: within 1e-5 of the im2col + GEMM path's, and each
// sample bit for bit the chain of the definition, `chain(that sample's slice of input)`.
template <class Chain>
void expect_chains_and_close(const std::vector<float>& direct, const std::vector<float>& gemm,
                             const std::vector<float>& input, Chain chain, const std::string& shape) {
  ASSERT_EQ(gemm.size(), direct.size()) << shape;
  EXPECT_LT(max_relative_gap(direct, gemm), 1e-5) << shape;
  const size_t in = input.size() / 4, out = direct.size() / 4;
  for (size_t n = 0; n < 4; ++n) {
    const std::vector<float> want = chain(std::vector<float>(input.begin() + n * in, input.begin() + (n + 1) * in));
    EXPECT_EQ(std::memcmp(want.data(), direct.data() + n * out, out * sizeof(float)), 0) << shape << ", sample " << n;
  }
}

std::string shape_text(const Shape2& s) {
  return std::to_string(s.ci) + "->" + std::to_string(s.co) + " at " + std::to_string(s.h) + "x" + std::to_string(s.w);
}

// Forward takes the direct kernel on these layers, every sample's output is the chain of the
// definition, and the im2col + GEMM path agrees to rounding (to the bit with OpenBLAS's
// AVX-512 SGEMM; in a few columns' last bits with its AVX2 one).
TEST(Conv2dDirect, ForwardIsTheChainAndAgreesWithImToColAndGemm) {
  if (!conv_detail::direct_forward_available()) GTEST_SKIP() << "no AVX2/FMA: the direct kernel is off";
  for (const Shape2& s : thin_layers()) {
    Generator gen(7);
    const Tensor x = rand_uniform({4, s.ci, s.h, s.w}, -1, 1, DType::f32, Device::cpu(), &gen);
    const Tensor w = rand_uniform({s.co, s.ci, s.k, s.k}, -0.3, 0.3, DType::f32, Device::cpu(), &gen);
    const Tensor b = Tensor::zeros({s.co});
    const int64_t taken_before = conv_detail::direct_forward_count();
    auto forward = [&] { return conv2d(x, w, b, {.pad = s.pad, .dilation = s.dilation}).to_vector<float>(); };
    const std::vector<float> direct = with_direct("1", forward);
    EXPECT_EQ(conv_detail::direct_forward_count() - taken_before, 1) << shape_text(s);
    const std::vector<float> ws = w.to_vector<float>();
    expect_chains_and_close(direct, with_direct("0", forward), x.to_vector<float>(),
                            [&](const std::vector<float>& xn) { return fma_chain(xn, ws, s); }, shape_text(s));
  }
}

// Backward-data likewise: taken on these layers, the definition's chain for every sample,
// and the col2im path's result to rounding (the sums run in another order there).
TEST(Conv2dDirect, BackwardDataIsTheChainAndAgreesWithColToIm) {
  if (!conv_detail::direct_forward_available()) GTEST_SKIP() << "no AVX2/FMA: the direct kernel is off";
  for (const Shape2& s : thin_layers()) {
    // Fewer filters than the kernel's block, or padding past the kernel's reach: im2col + GEMM
    // (TakenWhereItPays).
    if (s.ci < 4 || s.pad > s.dilation * (s.k - 1)) continue;
    const int64_t ho = s.h + 2 * s.pad - s.dilation * (s.k - 1), wo = s.w + 2 * s.pad - s.dilation * (s.k - 1);
    Generator gen(11);
    const Tensor dy = rand_uniform({4, s.co, ho, wo}, -1, 1, DType::f32, Device::cpu(), &gen);
    const Tensor w = rand_uniform({s.co, s.ci, s.k, s.k}, -0.3, 0.3, DType::f32, Device::cpu(), &gen);
    const conv_detail::ConvGeometry g{.pad = s.pad, .dilation = s.dilation};
    auto backward = [&] {
      const Tensor dx = Tensor::empty({4, s.ci, s.h, s.w});
      conv_detail::conv_backward_data_cpu(dx, dy, w, g);
      return dx.to_vector<float>();
    };
    const int64_t taken_before = conv_detail::direct_backward_count();
    const std::vector<float> direct = with_direct("1", backward);
    EXPECT_EQ(conv_detail::direct_backward_count() - taken_before, 1) << shape_text(s);
    const std::vector<float> ws = w.to_vector<float>();
    expect_chains_and_close(direct, with_direct("0", backward), dy.to_vector<float>(),
                            [&](const std::vector<float>& dyn) { return fma_chain_backward(dyn, ws, s); },
                            shape_text(s));
  }
}

// Which layers take it: stride 1, not pointwise, a short chain or thin filters, at least 4
// filters, 16 outputs wide; backward-data also needs pad ≤ dilation·(k − 1).
TEST(Conv2dDirect, TakenWhereItPays) {
  struct Case {
    int64_t ci, co, h, w, k, stride, pad;
    bool forward, backward;
  };
  const std::vector<Case> cases{
      {16, 16, 96, 96, 3, 2, 1, false, false},  // strided
      {32, 32, 96, 96, 1, 1, 0, false, false},  // pointwise
      {16, 16, 96, 96, 3, 1, 3, true, false},   // backward: pad past the kernel's reach
      {64, 64, 48, 48, 3, 1, 1, false, false},  // chains of 576, 64 filters either way
      {64, 16, 48, 48, 3, 1, 1, true, true},    // forward: 16 filters; backward: chains of 144
      {16, 64, 48, 48, 3, 1, 1, true, true},    // forward: chains of 144; backward: 16 filters
      {3, 16, 96, 96, 3, 1, 1, true, false},    // backward: 3 filters
      {32, 32, 96, 12, 3, 1, 1, false, false},  // 12 wide
  };
  for (const Case& c : cases) {
    Generator gen(3);
    const Tensor x = rand_uniform({4, c.ci, c.h, c.w}, -1, 1, DType::f32, Device::cpu(), &gen);
    const Tensor w = rand_uniform({c.co, c.ci, c.k, c.k}, -0.3, 0.3, DType::f32, Device::cpu(), &gen);
    const Conv2dOptions o{.stride = c.stride, .pad = c.pad};
    const int64_t forwards = conv_detail::direct_forward_count(), backwards = conv_detail::direct_backward_count();
    const Tensor y = conv2d(x, w, Tensor(), o);
    const Tensor dx = Tensor::empty(x.shape());
    conv_detail::conv_backward_data_cpu(dx, rand_uniform(y.shape(), -1, 1, DType::f32, Device::cpu(), &gen), w,
                                        {.stride = c.stride, .pad = c.pad});
    const bool available = conv_detail::direct_forward_available();
    const std::string shape = std::to_string(c.ci) + "->" + std::to_string(c.co) + " at " + std::to_string(c.h) + "x" +
                              std::to_string(c.w);
    EXPECT_EQ(conv_detail::direct_forward_count() - forwards, available && c.forward) << shape;
    EXPECT_EQ(conv_detail::direct_backward_count() - backwards, available && c.backward) << shape;
  }
}

}  // namespace
}  // namespace cbst
