#include "layers/module.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "engine/autograd.h"
#include "engine/random.h"

namespace cbst {

Tensor Module::forward(const Tensor&) {
  CBST_THROW("this module has no single-input forward(); call its own forward method");
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
  on_mode_change();
}

const char* precision_name(Precision p) { return p == Precision::bf16 ? "bf16" : "f32"; }

Precision precision_from_name(const std::string& name) {
  if (name == "f32") return Precision::f32;
  if (name == "bf16") return Precision::bf16;
  CBST_THROW("unknown precision '", name, "'; expected f32 or bf16");
}

void Module::set_precision(Precision p) {
  precision_ = p;
  for (auto& [name, child] : children_) child->set_precision(p);
}

void Module::to(Device device) {
  NoGradGuard guard;
  for (auto& [name, slot] : params_) {
    const bool rg = slot->requires_grad();
    Tensor moved = slot->detach().to(device);
    if (moved.same(*slot) || moved.impl().storage == slot->impl().storage) moved = moved.clone();
    *slot = moved;
    if (rg) slot->set_requires_grad(true);
  }
  for (auto& [name, slot] : buffers_) *slot = slot->detach().to(device);
  for (auto& [name, child] : children_) child->to(device);
}

void Module::collect(const std::string& prefix, bool parameters, NamedTensors& out) const {
  for (const auto& [name, slot] : parameters ? params_ : buffers_) out.emplace_back(prefix + name, *slot);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", parameters, out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, out);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : named_parameters()) out[name] = t.detach();
  for (auto& [name, t] : named_buffers()) out[name] = t.detach();
  return out;
}

std::vector<std::string> Module::load_state_dict(const std::map<std::string, Tensor>& state,
                                                 bool strict) {
  NamedTensors mine = named_parameters();
  for (auto& nb : named_buffers()) mine.push_back(nb);
  std::vector<std::string> missing, unexpected, misshaped;
  std::set<std::string> known;
  for (auto& [name, t] : mine) {
    known.insert(name);
    auto it = state.find(name);
    if (it == state.end()) missing.push_back(name);
    else if (it->second.shape() != t.shape())
      misshaped.push_back(name + " (checkpoint " + shape_str(it->second.shape()) + ", model " +
                          shape_str(t.shape()) + ")");
  }
  for (auto& [name, t] : state)
    if (!known.count(name)) unexpected.push_back(name);
  if (!misshaped.empty() || (strict && (!missing.empty() || !unexpected.empty()))) {
    std::string msg = "load_state_dict: the weights do not fit the model:";
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      msg += std::string("\n  ") + what + " (" + std::to_string(v.size()) + "):";
      for (const auto& s : v) msg += "\n    " + s;
    };
    list("mis-shaped", misshaped);
    if (strict) {
      list("missing from the checkpoint", missing);
      list("unexpected in the checkpoint", unexpected);
    }
    msg += "\nhint: check --model and the number of classes, or convert the file with "
           "`cbst weights convert`";
    throw Error(msg);
  }
  NoGradGuard guard;
  for (auto& [name, t] : mine) {
    auto it = state.find(name);
    if (it == state.end()) continue;
    Tensor dst = t;
    dst.copy_(it->second.detach().to(t.device()).to(t.dtype()));
  }
  std::vector<std::string> skipped = missing;
  skipped.insert(skipped.end(), unexpected.begin(), unexpected.end());
  return skipped;
}

void Module::zero_grad() {
  for (auto& [name, t] : named_parameters()) t.zero_grad();
}

Tensor& Module::register_parameter(const std::string& name, Tensor* slot, Tensor value,
                                   bool requires_grad) {
  *slot = value.detach();
  if (requires_grad) slot->set_requires_grad(true);
  params_.emplace_back(name, slot);
  return *slot;
}

Tensor& Module::register_buffer(const std::string& name, Tensor* slot, Tensor value) {
  *slot = value.detach();
  buffers_.emplace_back(name, slot);
  return *slot;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& m : order_) y = m->forward(y);
  return y;
}

// ---- initialisers

namespace {
std::pair<int64_t, int64_t> fans(const Tensor& w) {
  CBST_CHECK(w.dim() >= 2, "initialiser: weight of shape ", shape_str(w.shape()),
             " needs at least 2 dimensions");
  int64_t receptive = 1;
  for (int64_t i = 2; i < w.dim(); ++i) receptive *= w.size(i);
  return {w.size(1) * receptive, w.size(0) * receptive};
}
void assign(Tensor& w, const Tensor& values) {
  NoGradGuard guard;
  w.copy_(values.to(w.device()).to(w.dtype()));  // no-ops when already in place and type
}
}  // namespace

void normal_(Tensor& w, double mean, double stddev, Generator* gen) {
  assign(w, randn(w.shape(), mean, stddev, is_floating(w.dtype()) ? w.dtype() : DType::f64,
                  w.device(), gen));
}

void kaiming_normal_(Tensor& w, Generator* gen) {
  normal_(w, 0.0, std::sqrt(2.0 / double(fans(w).first)), gen);
}

void xavier_uniform_(Tensor& w, Generator* gen) {
  const auto [fan_in, fan_out] = fans(w);
  const double a = std::sqrt(6.0 / double(fan_in + fan_out));
  assign(w, rand_uniform(w.shape(), -a, a, is_floating(w.dtype()) ? w.dtype() : DType::f64,
                         w.device(), gen));
}

void constant_(Tensor& w, double value) {
  NoGradGuard guard;
  w.fill_(value);
}

void zeros_(Tensor& w) { constant_(w, 0.0); }

void bilinear_(Tensor& w) {
  CBST_CHECK(w.dim() == 4 && w.size(2) == w.size(3), "bilinear_: expected (C_in, C_out, k, k), got ",
             shape_str(w.shape()));
  const int64_t k = w.size(2), cin = w.size(0), cout = w.size(1);
  const double factor = double((k + 1) / 2);
  const double center = k % 2 == 1 ? factor - 1 : factor - 0.5;
  std::vector<double> v(size_t(w.numel()), 0.0);
  for (int64_t c = 0; c < std::min(cin, cout); ++c)
    for (int64_t y = 0; y < k; ++y)
      for (int64_t x = 0; x < k; ++x)
        v[size_t(((c * cout + c) * k + y) * k + x)] =
            (1 - std::abs(double(y) - center) / factor) * (1 - std::abs(double(x) - center) / factor);
  assign(w, Tensor::from_vector<double>(v, w.shape()));
}

}  // namespace cbst
