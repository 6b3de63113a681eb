// Module: named parameters, buffers and children, as torch.nn.Module.
//
// A module registers pointers to its own Tensor members (`register_parameter("weight",
// &weight_)`), so modules are neither copyable nor movable: hold them by shared_ptr.
// Names are hierarchical and stable (`backbone.conv1_1.weight`); checkpoints and imported
// weights are matched by name, with every shape checked.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace cbst {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Mixed-precision policy of a module tree (the "autocast" of the convolution layers).
//   f32:  everything in f32.
//   bf16: Conv2d and ConvTranspose2d cast their f32 input and f32 *master* weight to bf16
//         (a differentiable cast: the weight's gradient flows back into the f32 master
//         gradient) and convolve with bf16 operands and f32 accumulation; the result comes
//         back as f32 (rounded through bf16) with the bias added in f32. What a convolution
//         saves for backward is the bf16 copies of its input and weight. Batch norm and its
//         statistics, ReLU, pooling, upsampling, dropout, the loss and the optimizer (the
//         master weights, momentum) stay f32, as do parameters, buffers and checkpoints.
//         No loss scaling: bf16 has f32's exponent range.
// Only f32 inputs are cast: f64 (gradient checks) ignores the policy.
enum class Precision : uint8_t { f32, bf16 };
const char* precision_name(Precision p);              // "f32", "bf16"
Precision precision_from_name(const std::string& name);  // throws on anything else

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Single-input modules (the common case, and what Sequential chains) override this.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  // train(): batch statistics, dropout active. eval(): running statistics, no dropout.
  // Recurses into children; subclasses may react in on_mode_change().
  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }

  // Sets the precision policy of this module and every descendant (see Precision).
  void set_precision(Precision p);
  Precision precision() const { return precision_; }

  // Moves every parameter and buffer (recursively); parameters stay leaves requiring grad.
  void to(Device device);

  NamedTensors named_parameters() const;  // recursive, "child.name" paths
  NamedTensors named_buffers() const;
  std::vector<Tensor> parameters() const;
  int64_t parameter_count() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const {
    return children_;
  }

  // Parameters and buffers by name (PyTorch's state_dict).
  std::map<std::string, Tensor> state_dict() const;
  // Copies values in by name. With strict, a missing, unexpected or mis-shaped name is an
  // error listing *every* mismatch; without, mis-shaped names are still errors and the
  // missing/unexpected ones are returned.
  std::vector<std::string> load_state_dict(const std::map<std::string, Tensor>& state,
                                           bool strict = true);

  void zero_grad();

 protected:
  Tensor& register_parameter(const std::string& name, Tensor* slot, Tensor value,
                             bool requires_grad = true);
  Tensor& register_buffer(const std::string& name, Tensor* slot, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    children_.emplace_back(name, child);
    return child;
  }
  virtual void on_mode_change() {}

 private:
  void collect(const std::string& prefix, bool parameters, NamedTensors& out) const;
  std::vector<std::pair<std::string, Tensor*>> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  Precision precision_ = Precision::f32;
};

// Chains single-input modules.
class Sequential : public Module {
 public:
  Sequential() = default;
  template <class M>
  std::shared_ptr<M> add(const std::string& name, std::shared_ptr<M> m) {
    order_.push_back(m);
    return register_module(name, std::move(m));
  }
  Tensor forward(const Tensor& x) override;
  size_t size() const { return order_.size(); }

 private:
  std::vector<std::shared_ptr<Module>> order_;
};

// ---- initialisers (in place, no autograd; deterministic under the generator)
class Generator;
// He/Kaiming normal, fan_in mode, gain √2 (for ReLU): std = √(2 / fan_in).
void kaiming_normal_(Tensor& w, Generator* gen = nullptr);
// Xavier/Glorot uniform: U(−a, a), a = √(6 / (fan_in + fan_out)).
void xavier_uniform_(Tensor& w, Generator* gen = nullptr);
void normal_(Tensor& w, double mean, double stddev, Generator* gen = nullptr);
void constant_(Tensor& w, double value);
void zeros_(Tensor& w);
// Bilinear upsampling kernel (FCN): w[i][j][y][x] = (i == j) · f(y)·f(x), f the tent of the
// kernel size; w: (C, C, k, k) for conv_transpose2d.
void bilinear_(Tensor& w);

}  // namespace cbst
