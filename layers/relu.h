// ReLU module: y = max(x, 0), gradient 0 where x ≤ 0 (as torch.nn.ReLU).
//
// The op itself is engine/ops.h `relu(x)` (CPU and CUDA kernels, autograd, gradcheck in
// tests/engine). This header adds only the Module wrapper for Sequential chains. Residual
// connections use engine `add(a, b)` (a + b) directly; no module is needed.
#pragma once

#include "engine/ops.h"
#include "layers/module.h"

namespace cbst {

class ReLU : public Module {
 public:
  ReLU() = default;
  Tensor forward(const Tensor& x) override { return relu(x); }
};

}  // namespace cbst
