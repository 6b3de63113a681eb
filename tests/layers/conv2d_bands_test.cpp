// The CPU convolution's row bands (layers/conv2d_cpu.cpp): forward and backward-data in bands
// must give exactly the bits of one pass, and both must match the direct loop. The same holds
// for small convolutions run one sample per thread (CBST_CPU_CONV_SAMPLES).
#include <gtest/gtest.h>
#include <omp.h>

#include <cstdlib>
#include <string>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "layers/conv2d.h"
#include "tests/support/expect_close.h"

namespace cbst {
namespace {

struct BandCase {
  int64_t ci, co, hw, stride, pad, dilation;
};

struct Grads {
  Tensor y, dx, dw, db;
};

Grads run_conv(const Tensor& x0, const Tensor& w0, const Tensor& b0, const BandCase& c, const char* band_kb,
               const char* samples = "1") {
  setenv("CBST_CPU_CONV_BAND_KB", band_kb, 1);
  setenv("CBST_CPU_CONV_SAMPLES", samples, 1);
  Tensor x = x0.detach(), w = w0.detach(), b = b0.detach();
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  const Tensor y = conv2d(x, w, b, {.stride = c.stride, .pad = c.pad, .dilation = c.dilation});
  Generator gen(4);
  y.backward(rand_uniform(y.shape(), -1, 1, DType::f32, Device::cpu(), &gen));
  unsetenv("CBST_CPU_CONV_BAND_KB");
  unsetenv("CBST_CPU_CONV_SAMPLES");
  return {y.detach(), x.grad(), w.grad(), b.grad()};
}

struct ConvInputs {
  Tensor x, w, b;
};

// `n` images in [-1, 1], 3×3 weights and biases in [-0.1, 0.1], from Generator(seed).
ConvInputs conv_inputs(const BandCase& c, int64_t n, uint64_t seed) {
  Generator gen(seed);
  Tensor x = rand_uniform({n, c.ci, c.hw, c.hw}, -1, 1, DType::f32, Device::cpu(), &gen);
  Tensor w = rand_uniform({c.co, c.ci, 3, 3}, -0.1, 0.1, DType::f32, Device::cpu(), &gen);
  Tensor b = rand_uniform({c.co}, -0.1, 0.1, DType::f32, Device::cpu(), &gen);
  return {x, w, b};
}

// Direct convolution (with bias) in f64, one output element at a time.
Tensor direct(const Tensor& x, const Tensor& w, const Tensor& b, const BandCase& c, int64_t ho) {
  const std::vector<double> xv = x.to(DType::f64).to_vector<double>(), wv = w.to(DType::f64).to_vector<double>();
  const std::vector<double> bv = b.to(DType::f64).to_vector<double>();
  const int64_t n = x.size(0), k = w.size(2);
  std::vector<double> out(size_t(n * c.co * ho * ho), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < c.co; ++o)
      for (int64_t oh = 0; oh < ho; ++oh)
        for (int64_t ow = 0; ow < ho; ++ow) {
          double acc = bv[size_t(o)];
          for (int64_t ch = 0; ch < c.ci; ++ch)
            for (int64_t p = 0; p < k; ++p)
              for (int64_t q = 0; q < k; ++q) {
                const int64_t ih = oh * c.stride - c.pad + p * c.dilation, iw = ow * c.stride - c.pad + q * c.dilation;
                if (ih < 0 || ih >= c.hw || iw < 0 || iw >= c.hw) continue;
                acc += xv[size_t(((i * c.ci + ch) * c.hw + ih) * c.hw + iw)] * wv[size_t(((o * c.ci + ch) * k + p) * k + q)];
              }
          out[size_t(((i * c.co + o) * ho + oh) * ho + ow)] = acc;
        }
  return Tensor::from_vector<double>(out, {n, c.co, ho, ho});
}

class Conv2dBands : public ::testing::TestWithParam<BandCase> {};

TEST_P(Conv2dBands, BandedForwardAndBackwardGiveTheBitsOfOnePass) {
  const BandCase c = GetParam();
  const auto [x, w, b] = conv_inputs(c, 2, 8);
  const Grads whole = run_conv(x, w, b, c, "0");
  const Grads banded = run_conv(x, w, b, c, "256");  // 256 KB: a dozen bands or more
  EXPECT_TRUE(testing::identical(banded.y, whole.y));
  EXPECT_TRUE(testing::identical(banded.dx, whole.dx));
  EXPECT_TRUE(testing::identical(banded.dw, whole.dw));
  EXPECT_TRUE(testing::identical(banded.db, whole.db));
  // f32 sums of Ci·9 ≤ 288 products of size ≤ 0.1: rounding stays below 1e-5.
  CBST_EXPECT_CLOSE("banded forward", banded.y, direct(x, w, b, c, banded.y.size(2)), 1e-5, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Shapes, Conv2dBands,
                         ::testing::Values(BandCase{32, 64, 70, 1, 1, 1},    // VGG-like
                                           BandCase{32, 64, 70, 1, 2, 2},    // dilated, halo 4
                                           BandCase{32, 48, 90, 2, 1, 1}));  // strided

// Four samples on two threads, one sample per thread, against the samples one after the other
// with both threads on each: the same bits. Two threads are forced so that the test means the
// same on any machine (on one core they time-slice).
class Conv2dSamples : public ::testing::TestWithParam<BandCase> {};

TEST_P(Conv2dSamples, OneSamplePerThreadGivesTheBitsOfSamplesInTurn) {
  const BandCase c = GetParam();
  const int threads = omp_get_max_threads();
  omp_set_num_threads(2);
  const auto [x, w, b] = conv_inputs(c, 4, 9);
  const Grads in_turn = run_conv(x, w, b, c, "4096", "0");
  const Grads at_once = run_conv(x, w, b, c, "4096", "1");
  omp_set_num_threads(threads);
  EXPECT_TRUE(testing::identical(at_once.y, in_turn.y));
  EXPECT_TRUE(testing::identical(at_once.dx, in_turn.dx));
  EXPECT_TRUE(testing::identical(at_once.dw, in_turn.dw));
  EXPECT_TRUE(testing::identical(at_once.db, in_turn.db));
  CBST_EXPECT_CLOSE("one sample per thread", at_once.y, direct(x, w, b, c, at_once.y.size(2)), 1e-5, 1e-4);
}

// Sizes of small-deeplabv3plus at 96×96 (its stride-2, -4 and -8 maps). Each sample's GEMM
// holds 4·10⁶ to 3·10⁷ multiply-adds, so samples in turn split it between the two threads.
INSTANTIATE_TEST_SUITE_P(Shapes, Conv2dSamples,
                         ::testing::Values(BandCase{32, 32, 24, 1, 1, 1},
                                           BandCase{64, 96, 24, 1, 2, 2},
                                           BandCase{24, 32, 48, 2, 1, 1}));

}  // namespace
}  // namespace cbst
