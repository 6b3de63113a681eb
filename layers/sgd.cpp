// SGD: groups, schedules, clipping, the per-parameter fused update, state export.
#include "layers/sgd.h"

#include <cmath>
#include <set>

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "layers/layer_dispatch.h"
#include "layers/sgd_kernels.h"

namespace cbst {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::vector<ParamGroup> alex_param_groups(const NamedTensors& params) {
  ParamGroup weights{.name = "weights", .params = {}, .lr_mult = 1.0, .decay_mult = 1.0};
  ParamGroup biases{.name = "biases", .params = {}, .lr_mult = 2.0, .decay_mult = 0.0};
  for (const auto& [name, t] : params)
    (ends_with(name, "bias") || ends_with(name, "beta") ? biases : weights).params.emplace_back(name, t);
  return {weights, biases};
}

static double scheduled_lr(const SgdOptions& o, int64_t t) {
  const LrSchedule& s = o.schedule;
  switch (s.kind) {
    case LrSchedule::Kind::constant: return o.lr;
    case LrSchedule::Kind::step:
      return o.lr * std::pow(s.gamma, double(t / std::max<int64_t>(s.step_size, 1)));
    case LrSchedule::Kind::poly: {
      const double frac = double(std::min(t, s.max_iter)) / double(std::max<int64_t>(s.max_iter, 1));
      return o.lr * std::pow(1.0 - frac, s.power);
    }
  }
  return o.lr;
}

double lr_at(const SgdOptions& o, int64_t t) {
  const LrSchedule& s = o.schedule;
  const double lr = scheduled_lr(o, t);
  if (t >= s.warmup_iters) return lr;
  // mmcv's linear warm-up: the factor climbs from warmup_ratio at t = 0 to 1 at warmup_iters.
  const double k = (1.0 - double(t) / double(s.warmup_iters)) * (1.0 - s.warmup_ratio);
  return lr * (1.0 - k);
}

Sgd::Sgd(std::vector<ParamGroup> groups, const SgdOptions& options)
    : groups_(std::move(groups)), options_(options) {
  CBST_CHECK(options.lr >= 0 && options.momentum >= 0 && options.weight_decay >= 0 &&
                 options.max_grad_norm >= 0,
             "Sgd: lr ", options.lr, ", momentum ", options.momentum, ", weight_decay ",
             options.weight_decay, " and max_grad_norm ", options.max_grad_norm,
             " must be non-negative");
  CBST_CHECK(options.schedule.kind != LrSchedule::Kind::step || options.schedule.step_size > 0,
             "Sgd: the step schedule needs step_size > 0, got ", options.schedule.step_size);
  CBST_CHECK(options.schedule.kind != LrSchedule::Kind::poly || options.schedule.max_iter > 0,
             "Sgd: the poly schedule needs max_iter > 0, got ", options.schedule.max_iter);
  CBST_CHECK(options.schedule.warmup_iters >= 0 && options.schedule.warmup_ratio >= 0 &&
                 options.schedule.warmup_ratio <= 1,
             "Sgd: warm-up needs warmup_iters >= 0 and warmup_ratio in [0, 1], got ",
             options.schedule.warmup_iters, " and ", options.schedule.warmup_ratio);
  std::set<std::string> names;
  for (const ParamGroup& g : groups_) {
    for (const auto& [name, p] : g.params) {
      CBST_CHECK(names.insert(name).second, "Sgd: parameter '", name, "' appears twice");
      CBST_CHECK(p.defined() && is_floating(p.dtype()) && p.is_contiguous(), "Sgd: parameter '",
                 name, "' must be a contiguous f32/f64 tensor, got ",
                 p.defined() ? p.str() : std::string("undefined"));
    }
    buffers_.emplace_back(g.params.size());
  }
}

double Sgd::current_lr() const { return lr_at(options_, iteration_); }

void Sgd::zero_grad() {
  for (ParamGroup& g : groups_)
    for (auto& [name, p] : g.params) p.zero_grad();
}

void Sgd::step() {
  NoGradGuard guard;
  double grad_scale = 1.0;
  if (options_.max_grad_norm > 0) {
    int64_t count = 0;
    Device device = Device::cpu();
    for (const ParamGroup& g : groups_)
      for (const auto& [name, p] : g.params) {
        device = p.device();
        ++count;
      }
    if (!norm_scratch_.defined() || norm_scratch_.numel() != count || norm_scratch_.device() != device)
      norm_scratch_ = Tensor::zeros({count}, DType::f64, device);
    else
      norm_scratch_.zero_();
    int64_t slot = 0;
    for (const ParamGroup& g : groups_)
      for (const auto& [name, p] : g.params) {
        const Tensor grad = p.grad();
        if (grad.defined()) {
          CBST_CHECK(p.device() == device, "Sgd: gradient clipping needs every parameter on one "
                     "device; '", name, "' is on ", p.device().str(), ", others on ", device.str());
          const Tensor gc = grad.contiguous();
          CBST_LAYER_DISPATCH("sgd_clip", device, sum_of_squares, norm_scratch_, slot, gc);
        }
        ++slot;
      }
    double total = 0.0;
    for (double v : norm_scratch_.to(Device::cpu()).to_vector<double>()) total += v;
    last_grad_norm_ = std::sqrt(total);
    if (last_grad_norm_ > options_.max_grad_norm)
      grad_scale = options_.max_grad_norm / (last_grad_norm_ + 1e-6);
  }
  const double lr = current_lr();
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& g = groups_[gi];
    const layer_kernels::SgdUpdate u{.lr = lr * g.lr_mult,
                                     .momentum = options_.momentum,
                                     .weight_decay = options_.weight_decay * g.decay_mult,
                                     .grad_scale = grad_scale};
    for (size_t pi = 0; pi < g.params.size(); ++pi) {
      const Tensor& p = g.params[pi].second;
      const Tensor grad = p.grad();
      if (!grad.defined()) continue;
      CBST_CHECK(grad.shape() == p.shape() && grad.dtype() == p.dtype(), "Sgd: gradient ",
                 grad.str(), " does not match parameter '", g.params[pi].first, "' ", p.str());
      Tensor& buf = buffers_[gi][pi];
      if (options_.momentum != 0.0 && !buf.defined())
        buf = Tensor::zeros(p.shape(), p.dtype(), p.device());
      const Tensor gc = grad.contiguous();
      CBST_LAYER_DISPATCH("sgd_update", p.device(), sgd_update, p, buf, gc, u);
    }
  }
  ++iteration_;
}

std::map<std::string, Tensor> Sgd::state() const {
  std::map<std::string, Tensor> out;
  out["iteration"] = Tensor::scalar<int64_t>(iteration_);
  out["lr"] = Tensor::scalar<double>(options_.lr);
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t pi = 0; pi < groups_[gi].params.size(); ++pi)
      if (buffers_[gi][pi].defined())
        out["momentum_buffer." + groups_[gi].params[pi].first] = buffers_[gi][pi].detach().clone();
  return out;
}

void Sgd::load_state(const std::map<std::string, Tensor>& state) {
  auto find = [&](const std::string& key) -> const Tensor& {
    const auto it = state.find(key);
    CBST_CHECK(it != state.end(), "Sgd::load_state: the state has no entry '", key, "'");
    return it->second;
  };
  iteration_ = find("iteration").to(Device::cpu()).to(DType::i64).item<int64_t>();
  options_.lr = find("lr").to(Device::cpu()).to(DType::f64).item<double>();
  NoGradGuard guard;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t pi = 0; pi < groups_[gi].params.size(); ++pi) {
      const auto& [name, p] = groups_[gi].params[pi];
      const auto it = state.find("momentum_buffer." + name);
      if (it == state.end()) {
        buffers_[gi][pi] = Tensor();  // never stepped: starts from zero, as a fresh buffer
        continue;
      }
      CBST_CHECK(it->second.shape() == p.shape(), "Sgd::load_state: momentum buffer of '", name,
                 "' has shape ", shape_str(it->second.shape()), " but the parameter has ",
                 shape_str(p.shape()));
      Tensor& buf = buffers_[gi][pi];
      if (!buf.defined()) buf = Tensor::empty(p.shape(), p.dtype(), p.device());
      buf.copy_(it->second.to(p.device()));
    }
}

}  // namespace cbst
