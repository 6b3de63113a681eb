// The table of basic-op cases shared by the gradient checks (ops_gradcheck_test.cpp) and the
// CPU/CUDA parity tests (ops_cuda_test.cpp): every differentiable op of engine/ops.h and
// every differentiable view of engine/tensor.h appears here once.
#pragma once

#include <cmath>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "engine/random.h"

namespace cbst::testing {

struct OpCase {
  std::string name;
  std::vector<Shape> shapes;
  std::function<Tensor(const std::vector<Tensor>&)> fn;
  double low = -2.0, high = 2.0;  // input range
  // Inputs are pushed at least this far from 0 (kinks of relu/abs, poles of div/log).
  double min_magnitude = 0.0;
  std::vector<bool> differentiable = {};  // per input; empty = all
};

inline std::vector<OpCase> op_cases() {
  using V = const std::vector<Tensor>&;
  std::vector<OpCase> c;
  c.push_back({"add_broadcast", {{3, 4}, {4}}, [](V x) { return add(x[0], x[1]); }});
  c.push_back({"sub_broadcast", {{2, 3, 4}, {3, 1}}, [](V x) { return sub(x[0], x[1]); }});
  c.push_back({"mul_broadcast", {{3, 4}, {1, 4}}, [](V x) { return mul(x[0], x[1]); }});
  c.push_back({"div", {{3, 4}, {3, 4}}, [](V x) { return div(x[0], x[1]); }, -2, 2, 0.5});
  c.push_back({"pow_tensor", {{3, 4}, {3, 4}}, [](V x) { return pow(x[0], x[1]); }, 0.5, 2.0});
  c.push_back({"maximum", {{4, 5}, {4, 5}}, [](V x) { return maximum(x[0], x[1]); }});
  c.push_back({"minimum", {{4, 5}, {5}}, [](V x) { return minimum(x[0], x[1]); }});
  c.push_back({"add_scalar", {{2, 3}}, [](V x) { return add(x[0], 1.5); }});
  c.push_back({"mul_scalar", {{2, 3}}, [](V x) { return mul(x[0], -2.5); }});
  c.push_back({"pow_scalar", {{2, 3}}, [](V x) { return pow(x[0], 2.5); }, 0.3, 2.0});
  c.push_back({"rsub_scalar", {{2, 3}}, [](V x) { return rsub(x[0], 3.0); }});
  c.push_back({"rdiv_scalar", {{2, 3}}, [](V x) { return rdiv(x[0], 3.0); }, -2, 2, 0.5});
  c.push_back({"neg", {{2, 3}}, [](V x) { return neg(x[0]); }});
  c.push_back({"exp", {{2, 3}}, [](V x) { return exp(x[0]); }});
  c.push_back({"log", {{2, 3}}, [](V x) { return log(x[0]); }, 0.2, 3.0});
  c.push_back({"sqrt", {{2, 3}}, [](V x) { return sqrt(x[0]); }, 0.2, 3.0});
  c.push_back({"abs", {{3, 3}}, [](V x) { return abs(x[0]); }, -2, 2, 0.1});
  c.push_back({"relu", {{4, 4}}, [](V x) { return relu(x[0]); }, -2, 2, 0.1});
  c.push_back({"where", {{3, 4}, {3, 4}, {4}},
               [](V x) { return where(gt(x[0], 0.0), x[1], x[2]); }, -2, 2, 0.1,
               {false, true, true}});
  c.push_back({"sum_all", {{3, 4, 5}}, [](V x) { return sum(x[0]); }});
  c.push_back({"sum_dim_keepdim", {{3, 4, 5}}, [](V x) { return sum(x[0], {1}, true); }});
  c.push_back({"mean_dims", {{3, 4, 5}}, [](V x) { return mean(x[0], {0, 2}); }});
  c.push_back({"max_dim", {{3, 6}}, [](V x) { return max(x[0], {1}); }});
  c.push_back({"min_all", {{3, 6}}, [](V x) { return min(x[0]); }});
  c.push_back({"matmul", {{5, 7}, {7, 3}}, [](V x) { return matmul(x[0], x[1]); }});
  c.push_back({"matmul_batched", {{2, 4, 3}, {2, 3, 5}}, [](V x) { return matmul(x[0], x[1]); }});
  c.push_back({"matmul_transposed", {{7, 5}, {3, 7}},
               [](V x) { return matmul(x[0].transpose(0, 1), x[1].transpose(0, 1)); }});
  c.push_back({"concat", {{2, 3}, {2, 1}, {2, 4}}, [](V x) { return concat({x[0], x[1], x[2]}, 1); }});
  c.push_back({"transpose_mul", {{3, 4}, {4, 3}}, [](V x) { return mul(transpose(x[0], 0, 1), x[1]); }});
  c.push_back({"reshape_permute", {{2, 3, 4}}, [](V x) {
                 return mul(x[0].reshape({6, 4}).permute({1, 0}).contiguous(), 2.0);
               }});
  c.push_back({"narrow_select", {{4, 5}}, [](V x) {
                 return add(x[0].narrow(1, 1, 3), x[0].select(0, 2).narrow(0, 0, 3));
               }});
  c.push_back({"expand_unsqueeze", {{3}}, [](V x) { return mul(x[0].unsqueeze(0).expand({4, 3}), 1.0); }});
  c.push_back({"squeeze_clone", {{3, 1}}, [](V x) { return x[0].squeeze(1).clone(); }});
  c.push_back({"flip", {{2, 3, 4}}, [](V x) { return mul(flip(x[0], -1), flip(x[0], 1)); }});
  c.push_back({"fan_out_chain", {{3, 3}}, [](V x) {
                 const Tensor y = exp(mul(x[0], 0.5));
                 return add(mul(y, y), sum(y, {0}, true));  // y used three times
               }});
  return c;
}

// Deterministic inputs for a case, on the CPU in `dtype`, requiring grad where differentiable.
inline std::vector<Tensor> make_inputs(const OpCase& c, DType dtype, uint64_t seed) {
  Generator gen(seed);
  std::vector<Tensor> xs;
  for (size_t i = 0; i < c.shapes.size(); ++i) {
    std::vector<double> v = rand_uniform(c.shapes[i], c.low, c.high, DType::f64, Device::cpu(), &gen)
                                .to_vector<double>();
    for (double& e : v)
      if (std::abs(e) < c.min_magnitude) e = e < 0 ? e - c.min_magnitude : e + c.min_magnitude;
    Tensor t = Tensor::from_vector<double>(v, c.shapes[i]).to(dtype);
    const bool diff = c.differentiable.empty() || c.differentiable[i];
    if (diff) t.set_requires_grad(true);
    xs.push_back(t);
  }
  return xs;
}

}  // namespace cbst::testing
namespace cbst::testing { inline void PrintTo(const OpCase& c, std::ostream* os) { *os << c.name; } }
