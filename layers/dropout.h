// dropout / dropout2d: random zeroing with 1/(1−p) rescaling in training, identity in eval.
//
// Same semantics as torch.nn.functional.dropout(x, p, training) (each element kept with
// probability 1−p) and dropout2d (each (n, c) channel kept or zeroed as a whole; pytorch-fcn
// uses it, Caffe and the reference use element-wise dropout):
//   y = x · m / (1 − p),   m ~ Bernoulli(1 − p)
//   p = 0 or training = false: y = x (the same tensor, nothing drawn); p = 1: y = 0.
//   x: any shape (dropout2d: (N, C, ...)), f32/f64.
// The mask comes from Philox: element (or channel) k is kept when
// kern::random_bernoulli(seed, offset + k, 1 − p) is 1, with offset reserved from the
// Generator (advance(number of mask entries)). The same generator state therefore gives the
// same mask on the CPU and on CUDA, and the same mask as engine `bernoulli()`. In
// data-parallel training the counters are those of this rank's slice of the global batch
// (Generator::advance_batch_slice), so the masks equal a single process's.
// Backward saves the u8 mask: dx = dy · m / (1 − p).
#pragma once

#include "engine/random.h"
#include "engine/tensor.h"
#include "layers/module.h"

namespace cbst {

struct DropoutOptions {
  double p = 0.5;
  bool training = true;
  bool channelwise = false;  // true: dropout2d
};

// gen: null = the default generator.
Tensor dropout(const Tensor& x, const DropoutOptions& options = {}, Generator* gen = nullptr);
inline Tensor dropout2d(const Tensor& x, double p = 0.5, bool training = true,
                        Generator* gen = nullptr) {
  return dropout(x, {.p = p, .training = training, .channelwise = true}, gen);
}

// Active in train(), identity in eval(). `options.training` is ignored (the module's mode
// decides). The generator, when given, must outlive the module.
class Dropout : public Module {
 public:
  explicit Dropout(const DropoutOptions& options = {}, Generator* gen = nullptr)
      : options_(options), gen_(gen) {}
  Tensor forward(const Tensor& x) override;
  const DropoutOptions& options() const { return options_; }

 private:
  DropoutOptions options_;
  Generator* gen_;
};

}  // namespace cbst
