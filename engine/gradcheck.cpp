#include "engine/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"

namespace cbst {

namespace {

// L = Σ r ⊙ f(inputs), evaluated without recording.
double objective(const TensorFunction& f, const std::vector<Tensor>& inputs, const Tensor& r) {
  NoGradGuard guard;
  const Tensor y = f(inputs);
  CBST_CHECK(y.shape() == r.shape(), "gradcheck: the function's output shape changed between "
             "calls: ", shape_str(y.shape()), " vs ", shape_str(r.shape()));
  return sum(mul(y.to(DType::f64), r)).item<double>();
}

}  // namespace

GradcheckResult gradcheck(const TensorFunction& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  for (const Tensor& x : inputs)
    CBST_CHECK(!x.requires_grad() || (x.dtype() == DType::f64 && x.device().is_cpu()),
               "gradcheck: inputs that require grad must be f64 CPU tensors, got ", x.str());

  // Analytic gradients.
  std::vector<Tensor> leaves;
  for (const Tensor& x : inputs) {
    Tensor leaf = x.requires_grad() ? x.detach().clone().set_requires_grad(true) : x;
    leaves.push_back(leaf);
  }
  const Tensor y = f(leaves);
  CBST_CHECK(y.requires_grad(), "gradcheck: the output does not depend on any input that "
             "requires grad");
  Generator gen(options.seed);
  const Tensor r = rand_uniform(y.shape(), -1.0, 1.0, DType::f64, Device::cpu(), &gen);
  sum(mul(y.to(DType::f64), r)).backward();

  GradcheckResult result;
  int failures = 0;
  char line[512];
  for (size_t input = 0; input < leaves.size(); ++input) {
    if (!inputs[input].requires_grad()) continue;
    Tensor x = leaves[input].detach().clone();  // perturbed copy, no history
    const Tensor grad = leaves[input].grad();
    CBST_CHECK(grad.defined(), "gradcheck: input ", input, " received no gradient");
    std::vector<double> analytic = grad.to_vector<double>();
    double* data = x.data<double>();
    const int64_t n = x.numel();
    const int64_t step = std::max<int64_t>(1, n / std::max<int64_t>(1, options.max_checked));
    std::vector<Tensor> args = leaves;
    for (size_t j = 0; j < args.size(); ++j) args[j] = leaves[j].detach();
    args[input] = x;
    for (int64_t i = 0; i < n; i += step) {
      const double orig = data[i];
      bool near_kink = false;
      for (double k : options.kinks)
        near_kink |= std::abs(orig - k) <= options.kink_distance + options.eps;
      if (near_kink && options.kink_distance > 0.0) continue;
      data[i] = orig + options.eps;
      const double fp = objective(f, args, r);
      data[i] = orig - options.eps;
      const double fm = objective(f, args, r);
      data[i] = orig;
      const double numeric = (fp - fm) / (2.0 * options.eps);
      const double a = analytic[size_t(i)];
      const double scale = std::max({std::abs(a), std::abs(numeric), 1.0});
      const double fraction = std::abs(a - numeric) / (options.tol * scale);
      ++result.checked;
      if (!(fraction <= result.worst_fraction)) result.worst_fraction = fraction;
      if (!(fraction <= 1.0)) {
        result.ok = false;
        if (failures++ < 10) {
          std::snprintf(line, sizeof line,
                        "input %zu [%lld]: analytic %.10g, numeric %.10g (f+ %.12g, f- %.12g), "
                        "%.1f%% of tolerance\n",
                        input, (long long)i, a, numeric, fp, fm, 100.0 * fraction);
          result.report += line;
        }
      }
    }
  }
  std::snprintf(line, sizeof line, "gradcheck: %lld elements checked, worst used %.2f%% of "
                "tolerance %.1e%s", (long long)result.checked, 100.0 * result.worst_fraction,
                options.tol, result.ok ? "" : ", FAILED");
  result.report += line;
  return result;
}

}  // namespace cbst
