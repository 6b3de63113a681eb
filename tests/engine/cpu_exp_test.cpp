// The vector exp of the CPU kernels against std::exp, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "engine/cpu/exp.h"

namespace cbst {
namespace {

uint32_t bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
}

float from_bits(uint32_t u) {
  float v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// Count of arguments where exp_f32 and std::exp differ in any bit (NaNs compare as NaNs).
int64_t mismatches(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  kern::cpu::exp_f32(x.data(), y.data(), int64_t(x.size()));
  int64_t bad = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const float want = std::exp(x[i]);
    if (std::isnan(want) ? !std::isnan(y[i]) : bits(want) != bits(y[i])) {
      if (bad < 5) ADD_FAILURE() << "exp(" << x[i] << ") = " << want << ", exp_f32 gave " << y[i];
      ++bad;
    }
  }
  return bad;
}

TEST(CpuExp, EveryThirteenthFloatGivesTheBitsOfStdExp) {
  // Every 13th bit pattern of the domain's sign, 1 in 13 of all floats (330 million): both
  // signs, denormals, infinities and NaNs included. In chunks, to bound the memory.
  std::vector<float> x;
  x.reserve(1 << 22);
  int64_t bad = 0;
  for (uint64_t u = 0; u <= 0xffffffffull; u += 13) {
    x.push_back(from_bits(uint32_t(u)));
    if (x.size() == x.capacity()) {
      bad += mismatches(x);
      x.clear();
    }
  }
  bad += mismatches(x);
  EXPECT_EQ(bad, 0);
  std::printf("exp_f32 %s\n", kern::cpu::exp_f32_vectorised() ? "vectorised (AVX2, FMA)" : "std::exp per element");
}

TEST(CpuExp, SoftmaxArgumentsNearZeroGiveTheBitsOfStdExp) {
  // Every 7th float in [-1, 0]: where x - max(x) of a confident softmax lands.
  std::vector<float> x;
  int64_t bad = 0;
  for (uint32_t u = bits(-0.0f); u <= bits(-1.0f); u += 7) {
    x.push_back(from_bits(u));
    if (x.size() == (1u << 22)) {
      bad += mismatches(x);
      x.clear();
    }
  }
  bad += mismatches(x);
  EXPECT_EQ(bad, 0);
}

TEST(CpuExp, VectorPathIsOnWhereTheCpuAndTheCLibraryAllowIt) {
#if defined(__x86_64__) && defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 28))
  // glibc 2.28 and later compute expf as exp.cpp does; a failed self-check here means the
  // vector path has drifted from it (and every softmax runs at the scalar speed).
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    EXPECT_TRUE(kern::cpu::exp_f32_vectorised());
  }
#endif
  if (!kern::cpu::exp_f32_vectorised()) GTEST_SKIP() << "no AVX2/FMA or not glibc: exp_f32 is std::exp per element";
}

TEST(CpuExp, EdgesTailsAndInPlace) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  // Each special value inside a block of eight otherwise ordinary ones, at every position.
  const std::vector<float> special = {-inf, inf, nan, -0.0f, 0.0f, -103.0f, -103.00001f, 88.0f, 88.00001f,
                                      88.72283f, 88.72284f, -87.33655f, -103.97208f, -104.0f, 1e-30f, -1e-45f,
                                      // The two floats in [-103, 88] that round differently when
                                      // r is not a fused multiply-add.
                                      0x1.04845ep+5f, -0x1.f8cbb2p+5f};
  for (float s : special)
    for (int pos = 0; pos < 8; ++pos) {
      std::vector<float> x = {0.5f, -1.25f, -3.0f, 2.0f, -0.75f, -10.0f, 4.0f, -20.0f};
      x[size_t(pos)] = s;
      EXPECT_EQ(mismatches(x), 0) << "special value " << s << " at " << pos;
    }
  // Lengths that are not multiples of eight, and the same array as input and output.
  for (int64_t n : {0, 1, 7, 9, 15, 17, 33}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[size_t(i)] = -0.37f * float(i) + 1.5f;
    std::vector<float> y = x;
    kern::cpu::exp_f32(y.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(bits(y[size_t(i)]), bits(std::exp(x[size_t(i)]))) << n << " " << i;
  }
}

}  // namespace
}  // namespace cbst
