#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "engine/random.h"
#include "selftrain/prob_cache.h"
#include "selftrain/prob_cache_math.h"
#include "selftrain/pseudo_labels.h"
#include "tests/support/expect_close.h"

namespace cbst {
namespace {

TEST(HalfConversion, EveryHalfValueRoundTripsExactly) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f), uint16_t(h)) << "half 0x" << std::hex << h;
  }
}

TEST(HalfConversion, RoundsToTheNearestHalfWithTiesToEven) {
  // Between 1 and the next half (1 + 2⁻¹⁰): below the midpoint down, above up, the tie to even.
  EXPECT_EQ(f32_to_f16(1.0f + 0.4f / 1024), 0x3c00);
  EXPECT_EQ(f32_to_f16(1.0f + 0.6f / 1024), 0x3c01);
  EXPECT_EQ(f32_to_f16(1.0f + 0.5f / 1024), 0x3c00);
  EXPECT_EQ(f32_to_f16(1.0f + 1.5f / 1024), 0x3c02);
  // Subnormals: 2⁻²⁴ is the smallest; half of it rounds to even (0), 1.5 of it to 2.
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(0.5f, -24)), 0x0000);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -24)), 0x0002);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00) << "rounds to infinity";
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  // Probabilities: relative error at most 2⁻¹¹ in the normal range.
  Generator gen(1);
  for (float p : rand_uniform({1000}, 1e-4, 1.0, DType::f32, Device::cpu(), &gen).to_vector<float>())
    EXPECT_LE(std::abs(f16_to_f32(f32_to_f16(p)) - p), p * std::ldexp(1.0, -11));
}

TEST(ProbabilityCache, AssemblesEntriesInOrderInF32AndF16) {
  Generator gen(2);
  std::vector<Tensor> probs;
  for (int i = 0; i < 3; ++i) probs.push_back(rand_uniform({1, 4, 3, 5}, 0, 1, DType::f32, Device::cpu(), &gen));
  ProbabilityCache f32({.device = Device::cpu(), .half = false}), f16({.device = Device::cpu(), .half = true});
  for (const Tensor& p : probs) {
    f32.add(p);
    f16.add(p);
  }
  EXPECT_EQ(f16.bytes() * 2, f32.bytes());
  const Tensor a = f32.assemble(Device::cpu()), b = f16.assemble(Device::cpu());
  EXPECT_EQ(a.shape(), (Shape{3, 4, 3, 5}));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(testing::identical(a.narrow(0, i, 1), probs[size_t(i)]));
  // f16: each value is the f32 value rounded to half.
  const std::vector<float> va = a.to_vector<float>(), vb = b.to_vector<float>();
  for (size_t k = 0; k < va.size(); ++k) ASSERT_EQ(vb[k], f16_to_f32(f32_to_f16(va[k])));
  EXPECT_THROW(f32.add(Tensor::zeros({1, 4, 3, 4})), Error);
}

TEST(ProbabilityCache, F16PseudoLabelsEqualThoseOfTheRoundedProbabilities) {
  // The f16 cache changes nothing but the rounding of the probabilities.
  Generator gen(3);
  ProbabilityCache cache({.device = Device::cpu(), .half = true});
  Tensor rounded = Tensor::empty({2, 5, 6, 7});
  for (int i = 0; i < 2; ++i) {
    const Tensor p = rand_uniform({1, 5, 6, 7}, 0, 1, DType::f32, Device::cpu(), &gen);
    cache.add(p);
    std::vector<float> v = p.to_vector<float>();
    for (float& x : v) x = f16_to_f32(f32_to_f16(x));
    rounded.narrow(0, i, 1).copy_(Tensor::from_vector<float>(v, {1, 5, 6, 7}));
  }
  const Tensor all = cache.assemble(Device::cpu());
  const ClassThresholds a = class_thresholds(all, Tensor(), {.portion = 0.3});
  const ClassThresholds b = class_thresholds(rounded, Tensor(), {.portion = 0.3});
  EXPECT_TRUE(testing::identical(a.thresholds, b.thresholds));
  EXPECT_TRUE(testing::identical(pseudo_labels(all, Tensor(), a.thresholds).labels,
                                 pseudo_labels(rounded, Tensor(), b.thresholds).labels));
}

TEST(ProbabilityCacheCuda, DeviceF16CacheMatchesTheHostOne) {
  CBST_REQUIRE_CUDA();
  Generator gen(4);
  const Tensor p = rand_uniform({1, 19, 16, 32}, 0, 1, DType::f32, Device::cpu(), &gen);
  ProbabilityCache host({.device = Device::cpu(), .half = true}), device({.device = Device::cuda(), .half = true});
  host.add(p);
  device.add(p.to(Device::cuda()));
  EXPECT_TRUE(testing::identical(device.assemble(Device::cpu()), host.assemble(Device::cpu())));
}

TEST(ProbabilityCache, OptionNamesAreChecked) {
  EXPECT_TRUE(prob_cache_from_name("host", "f16", Device::cpu()).half);
  EXPECT_EQ(prob_cache_from_name("device", "f32", Device::cuda(1)).device, Device::cuda(1));
  EXPECT_THROW(prob_cache_from_name("disk", "f32", Device::cpu()), Error);
  EXPECT_THROW(prob_cache_from_name("host", "bf16", Device::cpu()), Error);
}

}  // namespace
}  // namespace cbst
