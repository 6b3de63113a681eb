// The CPU convolution's direct forward kernel (layers/conv2d_direct.h): the kernel against its
// definition (0 + one chain of fused multiply-adds per output, in im2col's row order), and
// conv2d forward with and without it (CBST_CPU_CONV_DIRECT) bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "engine/random.h"
#include "layers/conv2d.h"
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

TEST(Conv2dDirect, KernelIsTheChainOfFusedMultiplyAddsOfTheDefinition) {
  if (!conv_detail::direct_forward_available()) GTEST_SKIP() << "no AVX2/FMA: the direct kernel is off";
  // Filter counts with and without a remainder of 4, widths with 24-, 8- and 1-pixel tails,
  // dilation, a 5x5 kernel.
  const std::vector<Shape2> shapes{{3, 16, 20, 37, 3, 1, 1}, {16, 6, 9, 24, 3, 1, 1}, {5, 7, 11, 13, 3, 2, 2},
                                   {2, 3, 7, 30, 5, 2, 1},   {1, 1, 4, 4, 3, 1, 1},   {8, 5, 6, 51, 3, 3, 3}};
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
    EXPECT_EQ(differ, 0) << s.ci << "->" << s.co << " at " << s.h << "x" << s.w << ", k " << s.k << ", dilation "
                         << s.dilation;
  }
}

Tensor forward(const Tensor& x, const Tensor& w, const Tensor& b, int64_t pad, int64_t dilation, const char* direct) {
  setenv("CBST_CPU_CONV_DIRECT", direct, 1);
  const Tensor y = conv2d(x, w, b, {.pad = pad, .dilation = dilation});
  unsetenv("CBST_CPU_CONV_DIRECT");
  return y;
}

// The layers the direct kernel is for (small-fcn's conv1_1 and conv1_2 at the demo's 4x96²,
// conv2_2, small-deeplabv3plus's stem2 and a dilated block): the same bits either way, and the
// direct kernel is taken for exactly the layers whose GEMM path sums each output as the
// kernel's one chain. With OpenBLAS's AVX-512 SGEMM that is all of them; its AVX2 SGEMM sums a
// few columns of each call in another order, so there it is none (and these layers run
// through im2col and GEMM).
TEST(Conv2dDirect, ForwardKeepsTheBitsOfImToColAndGemm) {
  const std::vector<Shape2> shapes{{3, 16, 96, 96, 3, 1, 1},
                                   {16, 16, 96, 96, 3, 1, 1},
                                   {32, 32, 48, 48, 3, 1, 1},
                                   {24, 32, 48, 48, 3, 1, 1},
                                   {32, 32, 24, 24, 3, 2, 2}};
  const int64_t taken_before = conv_detail::direct_forward_count();
  int64_t gemm_is_the_chain = 0;
  for (const Shape2& s : shapes) {
    Generator gen(7);
    const Tensor x = rand_uniform({4, s.ci, s.h, s.w}, -1, 1, DType::f32, Device::cpu(), &gen);
    const Tensor w = rand_uniform({s.co, s.ci, s.k, s.k}, -0.3, 0.3, DType::f32, Device::cpu(), &gen);
    const Tensor b = rand_uniform({s.co}, -0.1, 0.1, DType::f32, Device::cpu(), &gen);
    const std::vector<float> gemm = forward(x, w, b, s.pad, s.dilation, "0").to_vector<float>();
    const std::vector<float> direct = forward(x, w, b, s.pad, s.dilation, "1").to_vector<float>();
    ASSERT_EQ(gemm.size(), direct.size());
    EXPECT_EQ(std::memcmp(gemm.data(), direct.data(), gemm.size() * sizeof(float)), 0)
        << s.ci << "->" << s.co << " at " << s.h << "x" << s.w;
    // The direct kernel's check compares the first sample without bias.
    const std::vector<float> sample(x.to_vector<float>()), weights(w.to_vector<float>());
    const std::vector<float> plain = forward(x, w, Tensor::zeros({s.co}), s.pad, s.dilation, "0").to_vector<float>();
    const std::vector<float> chain = fma_chain(sample, weights, s);  // reads sample 0 only
    gemm_is_the_chain += std::memcmp(plain.data(), chain.data(), chain.size() * sizeof(float)) == 0;
  }
  if (!conv_detail::direct_forward_available()) GTEST_SKIP() << "no AVX2/FMA: compared the GEMM path with itself";
  EXPECT_EQ(conv_detail::direct_forward_count() - taken_before, gemm_is_the_chain)
      << "the direct kernel must be taken where, and only where, the GEMM path gives its bits";
}

}  // namespace
}  // namespace cbst
