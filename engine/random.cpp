#include "engine/random.h"

#include <algorithm>

#include "engine/cuda_context.h"
#include "engine/dispatch.h"
#include "engine/kernel_math.h"
#include "engine/tensor_internal.h"

namespace cbst {

double Generator::next_double() {
  const Philox4 r = philox4x32(advance(1), seed_ ^ 0x5bd1e995u);
  return 1.0 - philox_uniform01(r.v[0], r.v[1]);
}

uint64_t Generator::next_below(uint64_t n) {
  CBST_CHECK(n > 0, "next_below(0)");
  return std::min<uint64_t>(uint64_t(next_double() * double(n)), n - 1);
}

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(uint64_t seed) { default_generator().set_state(seed, 0); }

namespace {
Tensor random_tensor(const Shape& shape, DType dtype, Device device, Generator* gen,
                     const char* op) {
  CBST_CHECK(is_floating(dtype), op, ": needs f32 or f64, got ", dtype_name(dtype));
  AllocationScope scope(op);
  (void)gen;
  return Tensor::empty(shape, dtype, device);
}
Generator& pick(Generator* gen) { return gen ? *gen : default_generator(); }
}  // namespace

Tensor rand_uniform(const Shape& shape, double low, double high, DType dtype, Device device,
                    Generator* gen) {
  Tensor t = random_tensor(shape, dtype, device, gen, "rand_uniform");
  Generator& g = pick(gen);
  const uint64_t offset = g.advance(uint64_t(t.numel()));
  CBST_DISPATCH("rand_uniform", device, uniform, detail::arg(t), low, high, g.seed(), offset);
  return t;
}

Tensor randn(const Shape& shape, double mean, double stddev, DType dtype, Device device,
             Generator* gen) {
  Tensor t = random_tensor(shape, dtype, device, gen, "randn");
  Generator& g = pick(gen);
  const uint64_t offset = g.advance(uint64_t(t.numel()));
  CBST_DISPATCH("randn", device, normal, detail::arg(t), mean, stddev, g.seed(), offset);
  return t;
}

Tensor bernoulli(const Shape& shape, double p, DType dtype, Device device, Generator* gen) {
  CBST_CHECK(p >= 0.0 && p <= 1.0, "bernoulli: p must be in [0, 1], got ", p);
  Tensor t = random_tensor(shape, dtype, device, gen, "bernoulli");
  Generator& g = pick(gen);
  const uint64_t offset = g.advance(uint64_t(t.numel()));
  CBST_DISPATCH("bernoulli", device, bernoulli, detail::arg(t), p, g.seed(), offset);
  return t;
}

}  // namespace cbst
