// The CPU convolution's row bands (layers/conv2d_cpu.cpp): forward and backward-data in bands
// compute the sums of one pass, so with a GEMM that sums each element in one order wherever it
// lies (the blocked kernel) they give exactly its bits, and with OpenBLAS they agree with it
// and with the direct loop. Small convolutions run one sample per thread
// (CBST_CPU_CONV_SAMPLES), and the backward-filter whose threads each own blocks of dW's
// columns, give the bits of one thread with any GEMM.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstdlib>
#include <string>

#include "engine/autograd.h"
#include "engine/kernels.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "layers/conv2d.h"
#include "layers/conv_backend.h"
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
  setenv("CBST_CPU_CONV_DIRECT", "0", 1);  // forward and backward-data through im2col, in bands
  Tensor x = x0.detach(), w = w0.detach(), b = b0.detach();
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  const Tensor y = conv2d(x, w, b, {.stride = c.stride, .pad = c.pad, .dilation = c.dilation});
  Generator gen(4);
  y.backward(rand_uniform(y.shape(), -1, 1, DType::f32, Device::cpu(), &gen));
  unsetenv("CBST_CPU_CONV_BAND_KB");
  unsetenv("CBST_CPU_CONV_SAMPLES");
  unsetenv("CBST_CPU_CONV_DIRECT");
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
  kern::set_cpu_gemm_impl(kern::CpuGemmImpl::blocked);
  const Grads whole = run_conv(x, w, b, c, "0");
  const Grads banded = run_conv(x, w, b, c, "256");  // 256 KB: a dozen bands or more
  kern::set_cpu_gemm_impl(kern::CpuGemmImpl::automatic);
  EXPECT_TRUE(testing::identical(banded.y, whole.y));
  EXPECT_TRUE(testing::identical(banded.dx, whole.dx));
  EXPECT_TRUE(testing::identical(banded.dw, whole.dw));
  EXPECT_TRUE(testing::identical(banded.db, whole.db));
  // f32 sums of Ci·9 ≤ 288 products of size ≤ 0.1: rounding stays below 1e-5.
  CBST_EXPECT_CLOSE("banded forward", banded.y, direct(x, w, b, c, banded.y.size(2)), 1e-5, 1e-4);
  // With the default GEMM (OpenBLAS where the build has it): the same values up to rounding.
  const Grads whole_blas = run_conv(x, w, b, c, "0");
  const Grads banded_blas = run_conv(x, w, b, c, "256");
  CBST_EXPECT_CLOSE("banded forward, default GEMM", banded_blas.y, direct(x, w, b, c, banded.y.size(2)), 1e-5, 1e-4);
  CBST_EXPECT_CLOSE("banded backward-data, default GEMM", banded_blas.dx, whole_blas.dx, 1e-5, 1e-4);
  EXPECT_TRUE(testing::identical(banded_blas.dw, whole_blas.dw));  // backward-filter has no bands
  CBST_EXPECT_CLOSE("backward-data, default GEMM against the blocked kernel", whole_blas.dx, whole.dx, 1e-5, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Shapes, Conv2dBands,
                         ::testing::Values(BandCase{32, 64, 70, 1, 1, 1},    // VGG-like
                                           BandCase{32, 64, 70, 1, 2, 2},    // dilated, halo 4
                                           BandCase{32, 48, 90, 2, 1, 1},    // strided
                                           // FCN8s's padding 100 in miniature: bands over the
                                           // 42 of 78 output rows that see the image
                                           BandCase{8, 64, 40, 1, 20, 1}));

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

// Backward-filter on two threads, each owning a block of dW's columns (its rows of every
// sample's col, and its block's GEMM with β = 1 after the first sample), against one thread,
// which runs the same blocks in turn: the same bits, and the path was taken.
class Conv2dFilterBlocks : public ::testing::TestWithParam<std::pair<BandCase, int64_t>> {};

TEST_P(Conv2dFilterBlocks, ThreadsOwningColumnsGiveTheBitsOfOneThread) {
  const auto [c, n] = GetParam();
  const int threads = omp_get_max_threads();
  const auto [x, w, b] = conv_inputs(c, n, 10);
  omp_set_num_threads(1);
  const Grads one = run_conv(x, w, b, c, "4096");
  omp_set_num_threads(2);
  const int64_t taken_before = conv_detail::owned_filter_block_count();
  const Grads two = run_conv(x, w, b, c, "4096");
  const int64_t taken = conv_detail::owned_filter_block_count() - taken_before;
  omp_set_num_threads(threads);
  EXPECT_EQ(taken, 1);
  EXPECT_TRUE(testing::identical(two.dw, one.dw));
  EXPECT_TRUE(testing::identical(two.dx, one.dx));
  EXPECT_TRUE(testing::identical(two.y, one.y));
  // dW against the definition: Σ over samples and output pixels of dy · x, in f64.
  Generator gen(4);  // run_conv's dy
  const Tensor dy = rand_uniform(two.y.shape(), -1, 1, DType::f32, Device::cpu(), &gen);
  const std::vector<double> xv = x.to(DType::f64).to_vector<double>(), gv = dy.to(DType::f64).to_vector<double>();
  const int64_t ho = two.y.size(2);
  std::vector<double> dw(size_t(c.co * c.ci * 9), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < c.co; ++o)
      for (int64_t oh = 0; oh < ho; ++oh)
        for (int64_t ow = 0; ow < ho; ++ow) {
          const double g = gv[size_t(((i * c.co + o) * ho + oh) * ho + ow)];
          for (int64_t ch = 0; ch < c.ci; ++ch)
            for (int64_t p = 0; p < 3; ++p)
              for (int64_t q = 0; q < 3; ++q) {
                const int64_t ih = oh * c.stride - c.pad + p * c.dilation, iw = ow * c.stride - c.pad + q * c.dilation;
                if (ih < 0 || ih >= c.hw || iw < 0 || iw >= c.hw) continue;
                dw[size_t(((o * c.ci + ch) * 3 + p) * 3 + q)] += g * xv[size_t(((i * c.ci + ch) * c.hw + ih) * c.hw + iw)];
              }
        }
  // f32 sums of up to 4·96² products of size ≤ 1, against sums of size up to ~100.
  CBST_EXPECT_CLOSE("owned-column backward-filter", two.dw, Tensor::from_vector<double>(dw, {c.co, c.ci, 3, 3}),
                    1e-3, 1e-4);
}

// small-fcn's conv1_1 (4·10⁶ multiply-adds per sample: two blocks of 16 and 11 of its 27
// columns), a VGG-like layer, a strided one, a dilated one with an odd batch, and one whose
// padding leaves output rows that see only padding.
INSTANTIATE_TEST_SUITE_P(Shapes, Conv2dFilterBlocks,
                         ::testing::Values(std::pair{BandCase{3, 16, 96, 1, 1, 1}, int64_t(4)},
                                           std::pair{BandCase{32, 64, 70, 1, 1, 1}, int64_t(2)},
                                           std::pair{BandCase{32, 48, 90, 2, 1, 1}, int64_t(2)},
                                           std::pair{BandCase{64, 96, 24, 1, 2, 2}, int64_t(3)},
                                           // padding 20: the col of the 42 rows that see the image
                                           std::pair{BandCase{8, 64, 40, 1, 20, 1}, int64_t(2)}));

}  // namespace
}  // namespace cbst
