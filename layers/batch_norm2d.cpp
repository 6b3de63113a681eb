// batch_norm2d front-end (argument checks, device dispatch, autograd) and the BatchNorm2d
// module.
#include "layers/batch_norm2d.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "engine/dist.h"
#include "engine/ops.h"
#include "layers/conv_backend.h"

namespace cbst {

namespace {

void check_channel_vector(const char* what, const Tensor& t, const Tensor& x) {
  if (!t.defined()) return;
  CBST_CHECK(t.dim() == 1 && t.size(0) == x.size(1), "batch_norm2d: ", what, " has shape ",
             shape_str(t.shape()), " but the input ", shape_str(x.shape()), " has ", x.size(1),
             " channels");
  CBST_CHECK(t.dtype() == x.dtype() && t.device() == x.device(), "batch_norm2d: ", what, " ",
             t.str(), " does not match the input ", x.str());
}

Tensor channel_view(const Tensor& t) { return t.reshape({1, t.size(0), 1, 1}); }

// Running-statistics mode: the statistics are constants, so the op is affine in x.
Tensor eval_mode(const Tensor& x_in, const Tensor& running_mean, const Tensor& running_var,
                 const Tensor& w_in, const Tensor& b_in, const Tensor& gamma, const Tensor& beta,
                 double eps) {
  const Tensor x = x_in.detach().contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  const Tensor rm = running_mean.detach().contiguous(), rv = running_var.detach().contiguous();
  if (y.numel() > 0)
    CBST_CONV_DISPATCH("batch_norm2d", x.device(), batch_norm_eval_forward, y, x, gamma, beta,
                       rm, rv, eps);
  if (!needs_grad({&x_in, &w_in, &b_in})) return y;
  Tensor invstd;
  {
    NoGradGuard guard;
    invstd = rdiv(sqrt(add(rv, eps)), 1.0);
  }
  const bool need_dx = x_in.requires_grad();
  const bool need_dw = w_in.defined() && w_in.requires_grad();
  const bool need_db = b_in.defined() && b_in.requires_grad();
  // Saved copies: the caller may change the running statistics in place after this call.
  return record("batch_norm2d", y, {x_in, w_in, b_in},
                [x = need_dw ? x : Tensor(), mean = rm.clone(), invstd, gamma, need_dx, need_dw,
                 need_db](const Tensor& dy) {
                  Tensor dx, dw, db;
                  if (need_dx) dx = mul(dy, channel_view(mul(gamma, invstd)));
                  if (need_dw)
                    dw = sum(mul(dy, mul(sub(x, channel_view(mean)), channel_view(invstd))),
                             {0, 2, 3});
                  if (need_db) db = sum(dy, {0, 2, 3});
                  return std::vector<Tensor>{dx, dw, db};
                });
}

Tensor train_mode(const Tensor& x_in, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& w_in, const Tensor& b_in, const Tensor& gamma, const Tensor& beta,
                  const BatchNorm2dOptions& o) {
  const int64_t m = x_in.size(0) * x_in.size(2) * x_in.size(3);
  CBST_CHECK(m > 1, "batch_norm2d: training needs more than one value per channel, got input ",
             shape_str(x_in.shape()), "; use a larger batch or crop, or eval()/freeze() the layer");
  for (const Tensor* r : {&running_mean, &running_var})
    CBST_CHECK(!r->defined() || r->is_contiguous(),
               "batch_norm2d: running statistics are updated in place and must be contiguous");
  const Tensor x = x_in.detach().contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor save_mean = Tensor::empty({x.size(1)}, x.dtype(), x.device());
  Tensor save_invstd = Tensor::empty({x.size(1)}, x.dtype(), x.device());
  const Tensor rm = running_mean.defined() ? running_mean.detach() : Tensor();
  const Tensor rv = running_var.defined() ? running_var.detach() : Tensor();
  CBST_CONV_DISPATCH("batch_norm2d", x.device(), batch_norm_train_forward, y, save_mean,
                     save_invstd, x, gamma, beta, rm, rv, o.momentum, o.eps);
  const bool need_dx = x_in.requires_grad();
  const bool need_dw = w_in.defined() && w_in.requires_grad();
  const bool need_db = b_in.defined() && b_in.requires_grad();
  const double eps = o.eps;
  return record("batch_norm2d", y, {x_in, w_in, b_in},
                [x, gamma, save_mean, save_invstd, eps, need_dx, need_dw,
                 need_db](const Tensor& gy) {
                  AllocationScope scope("batch_norm2d backward");
                  const Tensor dy = gy.contiguous();
                  Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
                  Tensor dw = Tensor::empty(gamma.shape(), x.dtype(), x.device());
                  Tensor db = Tensor::empty(gamma.shape(), x.dtype(), x.device());
                  CBST_CONV_DISPATCH("batch_norm2d backward", x.device(),
                                     batch_norm_train_backward, dx, dw, db, dy, x, gamma,
                                     save_mean, save_invstd, eps);
                  return std::vector<Tensor>{need_dx ? dx : Tensor(), need_dw ? dw : Tensor(),
                                             need_db ? db : Tensor()};
                });
}

// Per-channel sums of a (C) tensor summed across the ranks, in f64 on the host; `extra`
// values ride along (the element count).
std::vector<double> all_reduce_channels(dist::Communicator& comm, const std::vector<Tensor>& sums,
                                        std::vector<double> extra = {}) {
  std::vector<double> v;
  for (const Tensor& s : sums) {
    const std::vector<double> h = s.to(Device::cpu()).to(DType::f64).to_vector<double>();
    v.insert(v.end(), h.begin(), h.end());
  }
  v.insert(v.end(), extra.begin(), extra.end());
  comm.all_reduce_sum(v.data(), int64_t(v.size()));
  return v;
}

Tensor channel_tensor(const double* values, int64_t c, const Tensor& like) {
  return Tensor::from_vector<double>(std::vector<double>(values, values + c), {c}).to(like.dtype()).to(like.device());
}

// Training mode with the statistics of the global batch (see the header).
Tensor sync_train_mode(const Tensor& x_in, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& w_in, const Tensor& b_in, const Tensor& gamma, const Tensor& beta,
                       const BatchNorm2dOptions& o) {
  for (const Tensor* r : {&running_mean, &running_var})
    CBST_CHECK(!r->defined() || r->is_contiguous(),
               "batch_norm2d: running statistics are updated in place and must be contiguous");
  dist::Communicator& comm = *o.sync;
  const int64_t c = x_in.size(1);
  Tensor x, d, invstd, y;
  double m = 0;
  {
    NoGradGuard guard;
    x = x_in.detach().contiguous();
    const std::vector<double> s1 =
        all_reduce_channels(comm, {sum(x, {0, 2, 3})}, {double(x.size(0) * x.size(2) * x.size(3))});
    m = s1[size_t(c)];
    CBST_CHECK(m > 1, "batch_norm2d: training needs more than one value per channel over all ranks, got ", m,
               " (input ", shape_str(x_in.shape()), " on this rank); use a larger batch or crop, or freeze the layer");
    std::vector<double> mean(static_cast<size_t>(c)), var(mean), inv(mean);
    for (int64_t k = 0; k < c; ++k) mean[size_t(k)] = s1[size_t(k)] / m;
    const Tensor mean_t = channel_tensor(mean.data(), c, x);
    d = sub(x, channel_view(mean_t));
    const std::vector<double> s2 = all_reduce_channels(comm, {sum(mul(d, d), {0, 2, 3})});
    for (int64_t k = 0; k < c; ++k) {
      var[size_t(k)] = s2[size_t(k)] / m;
      inv[size_t(k)] = 1.0 / std::sqrt(var[size_t(k)] + o.eps);
    }
    invstd = channel_tensor(inv.data(), c, x);
    y = add(mul(d, channel_view(mul(gamma, invstd))), channel_view(beta));
    if (running_mean.defined()) {
      std::vector<double> unbiased(var);
      for (double& v : unbiased) v *= m / (m - 1);
      Tensor(running_mean).copy_(add(mul(running_mean, 1 - o.momentum), mul(mean_t, o.momentum)));
      Tensor(running_var)
          .copy_(add(mul(running_var, 1 - o.momentum), mul(channel_tensor(unbiased.data(), c, x), o.momentum)));
    }
  }
  const bool need_dx = x_in.requires_grad();
  const bool need_dw = w_in.defined() && w_in.requires_grad();
  const bool need_db = b_in.defined() && b_in.requires_grad();
  dist::Communicator* sync = o.sync;
  return record("sync_batch_norm2d", y, {x_in, w_in, b_in},
                [d, invstd, gamma, m, c, sync, need_dx, need_dw, need_db](const Tensor& gy) {
                  AllocationScope scope("sync_batch_norm2d backward");
                  const Tensor dy = gy.contiguous();
                  const Tensor xhat = mul(d, channel_view(invstd));
                  const Tensor sum_dy = sum(dy, {0, 2, 3}), sum_dy_xhat = sum(mul(dy, xhat), {0, 2, 3});
                  Tensor dx;
                  if (need_dx) {
                    const std::vector<double> g = all_reduce_channels(*sync, {sum_dy, sum_dy_xhat});
                    const Tensor total_dy = channel_tensor(g.data(), c, dy);
                    const Tensor total_dy_xhat = channel_tensor(g.data() + c, c, dy);
                    dx = mul(sub(sub(mul(dy, m), channel_view(total_dy)), mul(xhat, channel_view(total_dy_xhat))),
                             channel_view(mul(mul(gamma, invstd), 1.0 / m)));
                  }
                  return std::vector<Tensor>{dx, need_dw ? sum_dy_xhat : Tensor(), need_db ? sum_dy : Tensor()};
                });
}

}  // namespace

Tensor batch_norm2d(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                    const Tensor& weight, const Tensor& bias, const BatchNorm2dOptions& o) {
  CBST_CHECK(x.defined() && x.dim() == 4, "batch_norm2d: expected input (N, C, H, W), got ",
             x.defined() ? shape_str(x.shape()) : std::string("an undefined tensor"));
  CBST_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::f64,
             "batch_norm2d: needs a floating-point input (f32 or f64), got ", dtype_name(x.dtype()));
  CBST_CHECK(o.eps > 0 && o.momentum >= 0 && o.momentum <= 1, "batch_norm2d: eps ", o.eps,
             " must be > 0 and momentum ", o.momentum, " in [0, 1]");
  check_channel_vector("running_mean", running_mean, x);
  check_channel_vector("running_var", running_var, x);
  check_channel_vector("weight", weight, x);
  check_channel_vector("bias", bias, x);
  CBST_CHECK(running_mean.defined() == running_var.defined(),
             "batch_norm2d: give both running_mean and running_var, or neither");
  CBST_CHECK(o.training || running_mean.defined(),
             "batch_norm2d: evaluation mode needs running_mean and running_var");
  AllocationScope scope("batch_norm2d");
  const int64_t c = x.size(1);
  const Tensor gamma = weight.defined() ? weight.detach().contiguous()
                                        : Tensor::ones({c}, x.dtype(), x.device());
  const Tensor beta = bias.defined() ? bias.detach().contiguous()
                                     : Tensor::zeros({c}, x.dtype(), x.device());
  if (o.training && o.sync && o.sync->size() > 1)
    return sync_train_mode(x, running_mean, running_var, weight, bias, gamma, beta, o);
  if (o.training) return train_mode(x, running_mean, running_var, weight, bias, gamma, beta, o);
  return eval_mode(x, running_mean, running_var, weight, bias, gamma, beta, o.eps);
}

// ---- module

BatchNorm2d::BatchNorm2d(const BatchNorm2dParams& p, DType dtype) : params_(p) {
  CBST_CHECK(p.num_features >= 1, "BatchNorm2d: num_features ", p.num_features, " must be >= 1");
  const int64_t c = p.num_features;
  if (p.affine) {
    register_parameter("weight", &weight_, Tensor::ones({c}, dtype));
    register_parameter("bias", &bias_, Tensor::zeros({c}, dtype));
  }
  if (p.track_running_stats) {
    register_buffer("running_mean", &running_mean_, Tensor::zeros({c}, dtype));
    register_buffer("running_var", &running_var_, Tensor::ones({c}, dtype));
    register_buffer("num_batches_tracked", &num_batches_tracked_, Tensor::zeros({}, DType::i64));
  }
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  const bool update = training() && !frozen_ && params_.track_running_stats;
  // torch: without running statistics, batch statistics are used in eval mode as well.
  const bool batch_stats = (training() && !frozen_) || !params_.track_running_stats;
  double momentum = params_.momentum;
  if (update) {
    NoGradGuard guard;
    num_batches_tracked_.copy_(add(num_batches_tracked_, 1.0));
    if (params_.cumulative_average) momentum = 1.0 / double(num_batches_tracked_.to(Device::cpu()).item<int64_t>());
  }
  const bool pass_stats = update || !batch_stats;
  // Synchronised only in training: evaluation and pseudo-labelling run on each rank's own
  // images, as many as it has.
  return batch_norm2d(x, pass_stats ? running_mean_ : Tensor(), pass_stats ? running_var_ : Tensor(),
                      weight_, bias_,
                      {.training = batch_stats, .momentum = momentum, .eps = params_.eps,
                       .sync = training() && !frozen_ ? sync_ : nullptr});
}

void BatchNorm2d::freeze(bool train_affine) {
  CBST_CHECK(params_.track_running_stats,
             "BatchNorm2d::freeze: a layer without running statistics cannot be frozen");
  frozen_ = true;
  if (params_.affine) {
    weight_.set_requires_grad(train_affine);
    bias_.set_requires_grad(train_affine);
  }
}

void BatchNorm2d::reset_running_stats() {
  if (!params_.track_running_stats) return;
  NoGradGuard guard;
  running_mean_.zero_();
  running_var_.fill_(1.0);
  num_batches_tracked_.zero_();
}

void BatchNorm2d::unfreeze() {
  frozen_ = false;
  if (params_.affine) {
    weight_.set_requires_grad(true);
    bias_.set_requires_grad(true);
  }
}

void sync_batch_norm(Module& root, dist::Communicator* comm) {
  if (auto* bn = dynamic_cast<BatchNorm2d*>(&root)) bn->set_sync(comm);
  for (auto& [name, child] : root.named_children()) sync_batch_norm(*child, comm);
}

}  // namespace cbst
