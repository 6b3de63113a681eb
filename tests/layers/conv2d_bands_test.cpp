// The CPU convolution's row bands (layers/conv2d_cpu.cpp): forward and backward-data in bands
// must give exactly the bits of one pass, and both must match the direct loop.
#include <gtest/gtest.h>

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

Grads run_conv(const Tensor& x0, const Tensor& w0, const Tensor& b0, const BandCase& c, const char* band_kb) {
  setenv("CBST_CPU_CONV_BAND_KB", band_kb, 1);
  Tensor x = x0.detach(), w = w0.detach(), b = b0.detach();
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  const Tensor y = conv2d(x, w, b, {.stride = c.stride, .pad = c.pad, .dilation = c.dilation});
  Generator gen(4);
  y.backward(rand_uniform(y.shape(), -1, 1, DType::f32, Device::cpu(), &gen));
  unsetenv("CBST_CPU_CONV_BAND_KB");
  return {y.detach(), x.grad(), w.grad(), b.grad()};
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
  Generator gen(8);
  const Tensor x = rand_uniform({2, c.ci, c.hw, c.hw}, -1, 1, DType::f32, Device::cpu(), &gen);
  const Tensor w = rand_uniform({c.co, c.ci, 3, 3}, -0.1, 0.1, DType::f32, Device::cpu(), &gen);
  const Tensor b = rand_uniform({c.co}, -0.1, 0.1, DType::f32, Device::cpu(), &gen);
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

}  // namespace
}  // namespace cbst
