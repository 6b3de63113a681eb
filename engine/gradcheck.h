// gradcheck: compares the analytic backward of any function of tensors with central finite
// differences, in f64 on the CPU.
//
// Objective L = Σ r ⊙ f(inputs) with a fixed random r (seed 1701), so errors cannot cancel.
// For each checked element x_i of each input that requires grad:
//   numeric  n = (L(x_i + eps) − L(x_i − eps)) / (2·eps)
//   analytic a = ∂L/∂x_i from backward
//   pass if |a − n| ≤ tol · max(|a|, |n|, 1)
// At most `max_checked` elements per input are checked, spread deterministically over the
// input. Kinks (ReLU at 0, pooling ties) must be avoided by the caller's choice of inputs;
// `kink_distance` additionally skips elements whose value is that close to any of `kinks`.
// On failure the report names the input, flat index, analytic and numeric values and f±.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace cbst {

struct GradcheckOptions {
  double eps = 1e-6;
  double tol = 1e-5;
  int64_t max_checked = 256;  // per input
  uint64_t seed = 1701;
  std::vector<double> kinks = {};  // e.g. {0.0} for ReLU
  double kink_distance = 0.0;
};

struct GradcheckResult {
  bool ok = true;
  double worst_fraction = 0.0;  // max over elements of |a−n| / (tol·max(|a|,|n|,1))
  int64_t checked = 0;
  std::string report;  // one line per failure (first 10), then a summary
};

using TensorFunction = std::function<Tensor(const std::vector<Tensor>&)>;

// `inputs` must be f64 CPU tensors; those with requires_grad() are checked.
GradcheckResult gradcheck(const TensorFunction& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

}  // namespace cbst
