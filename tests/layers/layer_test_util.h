// Helpers shared by the layer tests: seeded inputs and the CPU-vs-CUDA parity run.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/gradcheck.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "tests/support/expect_close.h"

namespace cbst::testing {

// Uniform values in [low, high) as a leaf requiring grad (f64 by default, for gradcheck).
inline Tensor random_input(const Shape& shape, uint64_t seed, double low = -2.0,
                           double high = 2.0, DType dtype = DType::f64) {
  Generator gen(seed);
  Tensor t = rand_uniform(shape, low, high, dtype, Device::cpu(), &gen);
  t.set_requires_grad(true);
  return t;
}

// The per-pixel softmax recipe in f32 with std::exp, for one pixel whose class values are
// `stride` apart from xs: m = the maximum over classes, total = Σ exp(x − m) in class order.
// What the CPU kernels must reproduce bit for bit.
inline void softmax_max_and_sum(const float* xs, int64_t classes, int64_t stride, float& m, float& total) {
  m = xs[0];
  for (int64_t k = 1; k < classes; ++k) m = std::max(m, xs[k * stride]);
  total = 0;
  for (int64_t k = 0; k < classes; ++k) total += std::exp(xs[k * stride] - m);
}

// Gradcheck options without designated initialisers (GradcheckOptions::kinks has no
// default member initialiser, so {.eps, .tol} trips -Wmissing-field-initializers).
inline GradcheckOptions fd_options(double eps, double tol) {
  GradcheckOptions o;
  o.eps = eps;
  o.tol = tol;
  return o;
}

struct DeviceRun {
  Tensor out;
  std::vector<Tensor> grads;  // undefined where the input needs no grad
};

// Runs f on copies of `inputs` moved to `device` (requires_grad preserved), then backward of
// Σ r ⊙ out with a fixed random r; returns the output and the input gradients on the CPU.
inline DeviceRun run_on(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                        const std::vector<Tensor>& inputs, Device device) {
  std::vector<Tensor> xs;
  for (const Tensor& x : inputs) {
    Tensor moved = x.detach().to(device);
    if (x.requires_grad()) moved.set_requires_grad(true);
    xs.push_back(moved);
  }
  DeviceRun r;
  const Tensor out = f(xs);
  r.out = out.detach().to(Device::cpu());
  if (out.requires_grad()) {
    Generator gen(3);
    const Tensor weights =
        rand_uniform(out.shape(), -1, 1, out.dtype(), Device::cpu(), &gen).to(device);
    sum(mul(out, weights)).backward();
  }
  for (const Tensor& x : xs)
    r.grads.push_back(x.requires_grad() && x.grad().defined() ? x.grad().to(Device::cpu())
                                                               : Tensor());
  return r;
}

// CPU and CUDA agree on the output and every input gradient (f32 inputs).
inline void expect_cuda_matches_cpu(const std::string& name,
                                    const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                    const std::vector<Tensor>& inputs, Tolerance tol = {}) {
  const DeviceRun cpu = run_on(f, inputs, Device::cpu());
  const DeviceRun gpu = run_on(f, inputs, Device::cuda());
  EXPECT_TRUE(close_result(name + " out", gpu.out, cpu.out, tol));
  for (size_t i = 0; i < cpu.grads.size(); ++i)
    if (cpu.grads[i].defined()) {
      ASSERT_TRUE(gpu.grads[i].defined()) << name << ": no CUDA gradient for input " << i;
      EXPECT_TRUE(close_result(name + " grad" + std::to_string(i), gpu.grads[i], cpu.grads[i], tol));
    }
}

}  // namespace cbst::testing
