// bf16 storage: the f32 → bf16 conversion against a reference that knows nothing of bit
// tricks (the two neighbouring bf16 values compared in double), the exact widening, the
// differentiable cast, the bf16 GEMM, and the errors of ops that do not take bf16.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "engine/autograd.h"
#include "engine/bf16.h"
#include "engine/kernels.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "tests/support/expect_close.h"

namespace cbst {
namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Value of a bf16 pattern as a double; the pattern one past the largest finite value (Inf)
// counts as 2^128, where the exponent range would continue: IEEE rounds to Inf exactly when
// the value is at least halfway between max-finite and 2^128.
double bf16_value_or_2_128(uint16_t b) {
  if ((b & 0x7FFF) == 0x7F80) return std::copysign(std::ldexp(1.0, 128), (b & 0x8000) ? -1.0 : 1.0);
  return double(float_from_bf16_bits(b));
}

// Round-to-nearest-even by comparing distances in double (exact: both neighbours and the
// input are f32 values, whose differences double represents exactly).
uint16_t reference_bf16(float f) {
  const uint32_t u = float_bits(f);
  const uint16_t toward_zero = uint16_t(u >> 16);  // truncation: |lo| ≤ |f|
  if (float_from_bf16_bits(toward_zero) == f) return toward_zero;
  const uint16_t away = uint16_t(toward_zero + 1);  // next magnitude (may be Inf)
  const double x = double(f);
  const double d_lo = std::fabs(x - double(float_from_bf16_bits(toward_zero)));
  const double d_hi = std::fabs(bf16_value_or_2_128(away) - x);
  if (d_lo < d_hi) return toward_zero;
  if (d_hi < d_lo) return away;
  return (toward_zero & 1) ? away : toward_zero;  // tie: the even mantissa
}

bool is_nan_bits(uint16_t b) { return (b & 0x7F80) == 0x7F80 && (b & 0x007F) != 0; }

TEST(Bf16, RoundsToNearestEvenLikeADoubleReference) {
  // Every upper half, with lower halves at and around the tie point and the extremes: ties
  // on even and odd mantissas, subnormals (exponent 0), carries into the exponent, the
  // overflow of max-finite into Inf.
  const uint32_t lows[] = {0x0000, 0x0001, 0x3FFF, 0x7FFF, 0x8000, 0x8001, 0xBFFF, 0xFFFE, 0xFFFF, 0x1234, 0xC321};
  int64_t checked = 0, ties = 0;
  for (uint32_t hi = 0; hi < 0x10000; ++hi) {
    const bool nan_or_inf = (hi & 0x7F80) == 0x7F80;
    for (uint32_t lo : lows) {
      const uint32_t u = (hi << 16) | lo;
      const float f = from_bits(u);
      if (nan_or_inf) continue;  // the NaN and Inf tests below
      const uint16_t got = bf16(f).bits, want = reference_bf16(f);
      ASSERT_EQ(got, want) << "f32 bits 0x" << std::hex << u << " (" << f << ")";
      ++checked;
      ties += lo == 0x8000;
    }
  }
  // Random patterns too (the low halves above are a fixed set).
  Generator gen(7);
  for (int i = 0; i < 200000; ++i) {
    const uint32_t u = uint32_t(gen.next_below(uint64_t(1) << 32));
    const float f = from_bits(u);
    if (std::isnan(f) || std::isinf(f)) continue;
    ASSERT_EQ(bf16(f).bits, reference_bf16(f)) << "f32 bits 0x" << std::hex << u;
    ++checked;
  }
  EXPECT_GT(checked, 900000);
  EXPECT_GT(ties, 60000);
}

TEST(Bf16, TiesGoToTheEvenNeighbour) {
  // 1 + 2^-8 lies halfway between 1 (even mantissa) and 1 + 2^-7 (odd): down to 1.
  EXPECT_EQ(bf16(1.0f + 0x1p-8f).bits, 0x3F80);
  // 1 + 3·2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): up.
  EXPECT_EQ(bf16(1.0f + 3 * 0x1p-8f).bits, 0x3F82);
  // Just above the first tie rounds up.
  EXPECT_EQ(bf16(std::nextafter(1.0f + 0x1p-8f, 2.0f)).bits, 0x3F81);
  EXPECT_EQ(bf16(-(1.0f + 0x1p-8f)).bits, 0xBF80);
}

TEST(Bf16, SubnormalsRoundLikeNormals) {
  // The smallest f32 subnormal rounds to +0 (below half of bf16's smallest subnormal 2^-133).
  EXPECT_EQ(bf16(from_bits(0x00000001)).bits, 0x0000);
  // 2^-133 exactly is bf16's smallest subnormal; halfway to the next one ties to even.
  EXPECT_EQ(bf16(0x1p-133f).bits, 0x0001);
  EXPECT_EQ(bf16(from_bits(0x00018000)).bits, 0x0002);  // 1.5·2^-133 → tie → 2·2^-133 (even)
  EXPECT_EQ(bf16(from_bits(0x00008000)).bits, 0x0000);  // 0.5·2^-133 → tie → 0 (even)
  // The largest bf16 subnormal carries into the smallest normal.
  EXPECT_EQ(bf16(from_bits(0x007FFFFF)).bits, 0x0080);
  EXPECT_EQ(bf16(-0.0f).bits, 0x8000);
}

TEST(Bf16, OverflowRoundsToInfinityOnlyFromTheHalfwayPoint) {
  const float max_finite_bf16 = float_from_bf16_bits(0x7F7F);  // (2 − 2^-7)·2^127
  EXPECT_EQ(bf16(max_finite_bf16).bits, 0x7F7F);
  // Halfway between max-finite and 2^128: the tie goes to the even side, which is Inf.
  EXPECT_EQ(bf16(from_bits(0x7F7F8000)).bits, 0x7F80);
  EXPECT_EQ(bf16(from_bits(0x7F7F7FFF)).bits, 0x7F7F);
  EXPECT_EQ(bf16(std::numeric_limits<float>::max()).bits, 0x7F80);
  EXPECT_EQ(bf16(-std::numeric_limits<float>::max()).bits, 0xFF80);
  EXPECT_EQ(bf16(std::numeric_limits<float>::infinity()).bits, 0x7F80);
  EXPECT_EQ(bf16(-std::numeric_limits<float>::infinity()).bits, 0xFF80);
}

TEST(Bf16, NaNStaysAQuietNaNWithItsSign) {
  // Payloads that truncation would turn into Inf (only low bits set) must stay NaN.
  for (uint32_t u : {0x7F800001u, 0x7F80FFFFu, 0x7FC00000u, 0x7FFFFFFFu, 0xFF800001u, 0xFFC00000u}) {
    const uint16_t b = bf16(from_bits(u)).bits;
    EXPECT_TRUE(is_nan_bits(b)) << std::hex << u << " -> " << b;
    EXPECT_TRUE(b & 0x0040) << "quiet bit of " << std::hex << b;
    EXPECT_EQ(b & 0x8000, (u >> 16) & 0x8000) << "sign of " << std::hex << u;
  }
}

TEST(Bf16, EveryBitPatternRoundTripsThroughF32) {
  int64_t signalling = 0;
  for (uint32_t p = 0; p < 0x10000; ++p) {
    const uint16_t b = uint16_t(p);
    const float f = float_from_bf16_bits(b);
    EXPECT_EQ(float_bits(f), uint32_t(b) << 16);  // widening is exact
    const uint16_t back = bf16(f).bits;
    if (is_nan_bits(b) && !(b & 0x0040)) {
      // A signalling NaN comes back quiet (IEEE: converting an sNaN delivers a qNaN),
      // with its sign and payload.
      EXPECT_EQ(back, b | 0x0040) << std::hex << b;
      ++signalling;
    } else {
      ASSERT_EQ(back, b) << "pattern 0x" << std::hex << b;
    }
  }
  EXPECT_EQ(signalling, 2 * 63);
}

TEST(Bf16, CastIsDifferentiableAndMatchesTheScalarConversion) {
  Generator gen(3);
  const Tensor base = randn({5, 7}, 0.0, 3.0, DType::f32, Device::cpu(), &gen);
  Tensor x = base.transpose(0, 1).detach();  // a strided source
  x.set_requires_grad(true);
  const Tensor xb = x.to(DType::bf16);
  EXPECT_EQ(xb.dtype(), DType::bf16);
  EXPECT_EQ(xb.nbytes(), size_t(35 * 2));
  const std::vector<float> xs = x.contiguous().to_vector<float>();
  const std::vector<bf16> bs = xb.to_vector<bf16>();
  for (size_t i = 0; i < xs.size(); ++i) EXPECT_EQ(bs[i].bits, bf16(xs[i]).bits) << i;
  // Widening back is exact, and the gradient of the round trip reaches x as f32.
  const Tensor back = xb.to(DType::f32);
  const std::vector<float> ws = back.to_vector<float>();
  for (size_t i = 0; i < xs.size(); ++i) EXPECT_EQ(ws[i], float(bs[i])) << i;
  const Tensor r = rand_uniform({7, 5}, -1, 1, DType::f32, Device::cpu(), &gen);
  sum(mul(back, r)).backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().dtype(), DType::f32);
  // The cast's gradient is the identity, rounded through bf16 on the way back.
  EXPECT_TRUE(testing::identical(x.grad(), r.to(DType::bf16).to(DType::f32)));
}

// A bf16 tensor used twice: its two gradients are summed in f32 and rounded to bf16, both
// for an intermediate (the cast's output) and for a bf16 leaf.
TEST(Bf16, GradientsOfABf16TensorUsedTwiceAreSummed) {
  Generator gen(4);
  const Tensor b = randn({5, 3}, 0, 1, DType::f32, Device::cpu(), &gen).to(DType::bf16);
  const Tensor g1 = randn({4, 3}, 0, 1, DType::f32, Device::cpu(), &gen);
  const Tensor g2 = randn({4, 3}, 0, 1, DType::f32, Device::cpu(), &gen);
  Tensor a = randn({4, 5}, 0, 1, DType::f32, Device::cpu(), &gen);
  a.set_requires_grad(true);
  const Tensor ab = a.to(DType::bf16);  // an intermediate with two consumers
  (sum(mul(matmul(ab, b), g1)) + sum(mul(matmul(ab, b), g2))).backward();
  const Tensor bt = b.transpose(0, 1);
  const Tensor d1 = matmul(g1.to(DType::bf16), bt).to(DType::bf16).to(DType::f32);
  const Tensor d2 = matmul(g2.to(DType::bf16), bt).to(DType::bf16).to(DType::f32);
  EXPECT_TRUE(testing::identical(a.grad(), add(d1, d2).to(DType::bf16).to(DType::f32)));

  Tensor leaf = ab.detach();
  leaf.set_requires_grad(true);
  matmul(leaf, b).backward(g1);
  matmul(leaf, b).backward(g2);  // accumulates into the bf16 leaf's gradient
  ASSERT_EQ(leaf.grad().dtype(), DType::bf16);
  EXPECT_TRUE(testing::identical(leaf.grad().to(DType::f32), add(d1, d2).to(DType::bf16).to(DType::f32)));
}

TEST(Bf16, ZerosAndFillWorkOnBf16) {
  Tensor t = Tensor::full({3}, 1.0 + 0x1p-8, DType::bf16);
  for (const bf16& b : t.to_vector<bf16>()) EXPECT_EQ(b.bits, 0x3F80);  // tie to even
  t.zero_();
  for (const bf16& b : t.to_vector<bf16>()) EXPECT_EQ(b.bits, 0);
}

TEST(Bf16, OpsThatDoNotTakeBf16SaySo) {
  const Tensor a = Tensor::ones({2, 2}).to(DType::bf16);
  for (const auto& f : std::vector<std::function<void()>>{
           [&] { add(a, a); }, [&] { exp(a); }, [&] { relu(a); }, [&] { sum(a); },
           [&] { mul(a, 2.0); }}) {
    const std::string msg = testing::error_of(f);
    EXPECT_NE(msg.find("bf16"), std::string::npos) << msg;
    EXPECT_NE(msg.find(".to(DType::f32)"), std::string::npos) << msg;
  }
}

// The bf16 GEMM: exact products and f32 sums, so against an f64 product of the rounded
// operands the error of element (i, j) is at most the f32 summation bound
// γ_K · Σ_p |a_ip||b_pj| with γ_K ≈ K·2^-24 (K terms; Higham, Accuracy and Stability, §3.1).
TEST(Bf16, MatmulMatchesF64OnTheRoundedOperandsWithinTheSummationBound) {
  Generator gen(11);
  for (const bool batched : {false, true}) {
    const int64_t B = 3, M = 17, K = 300, N = 23;
    const Shape sa = batched ? Shape{B, M, K} : Shape{M, K};
    const Shape sb = batched ? Shape{B, N, K} : Shape{N, K};
    const Tensor a = randn(sa, 0, 1, DType::f32, Device::cpu(), &gen).to(DType::bf16);
    // b transposed: a strided operand (the GEMM's trans flag).
    const Tensor b = randn(sb, 0, 1, DType::f32, Device::cpu(), &gen).to(DType::bf16).transpose(-1, -2);
    const Tensor c = matmul(a, b);
    ASSERT_EQ(c.dtype(), DType::f32);
    const Tensor a64 = a.to(DType::f64), b64 = b.to(DType::f64);
    const Tensor ref = matmul(a64, b64);
    const Tensor bound = matmul(abs(a64), abs(b64));
    const std::vector<double> r = ref.to_vector<double>(), s = bound.to_vector<double>();
    const std::vector<float> got = c.to_vector<float>();
    double worst = 0;
    for (size_t i = 0; i < r.size(); ++i) {
      const double tol = double(K) * 0x1p-24 * s[i] + 1e-30;
      worst = std::max(worst, std::fabs(double(got[i]) - r[i]) / tol);
    }
    std::printf("bf16 matmul%s: worst element used %.3f of the summation bound\n", batched ? " (batched)" : "", worst);
    EXPECT_LE(worst, 1.0);
  }
}

TEST(Bf16, MatmulGradientsAreBf16GemmsOfTheRoundedGradient) {
  Generator gen(12);
  const Tensor a32 = randn({6, 40}, 0, 1, DType::f32, Device::cpu(), &gen);
  const Tensor b32 = randn({40, 9}, 0, 1, DType::f32, Device::cpu(), &gen);
  Tensor a = a32.detach(), b = b32.detach();
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  const Tensor ab = a.to(DType::bf16), bb = b.to(DType::bf16);
  const Tensor g = randn({6, 9}, 0, 1, DType::f32, Device::cpu(), &gen);
  matmul(ab, bb).backward(g);
  const Tensor gb = g.to(DType::bf16);
  // da = bf16(bf16(g) · bᵀ), widened: the same computation spelled out.
  const Tensor da = matmul(gb, bb.detach().transpose(0, 1)).to(DType::bf16).to(DType::f32);
  const Tensor db = matmul(ab.detach().transpose(0, 1), gb).to(DType::bf16).to(DType::f32);
  EXPECT_TRUE(testing::identical(a.grad(), da));
  EXPECT_TRUE(testing::identical(b.grad(), db));
}

}  // namespace
}  // namespace cbst
