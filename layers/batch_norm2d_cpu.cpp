// Batch normalisation on the CPU: one pass per channel, f64 accumulation (the sums run over
// N·H·W elements). Channels are independent and split across OpenMP threads.
#include <cmath>

#include "engine/dispatch.h"
#include "layers/conv_backend.h"

namespace cbst::conv_detail {

namespace {

struct Layout {
  int64_t n, c, hw;
  explicit Layout(const Tensor& x) : n(x.size(0)), c(x.size(1)), hw(x.size(2) * x.size(3)) {}
  int64_t offset(int64_t i, int64_t k) const { return (i * c + k) * hw; }
};

template <class T>
void train_forward(const Tensor& y, const Tensor& save_mean, const Tensor& save_invstd,
                   const Tensor& x, const Tensor& gamma, const Tensor& beta,
                   const Tensor& running_mean, const Tensor& running_var, double momentum,
                   double eps) {
  const Layout l(x);
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  const T* g = gamma.data<T>();
  const T* b = beta.data<T>();
  T* mean_out = save_mean.data<T>();
  T* invstd_out = save_invstd.data<T>();
  T* rm = running_mean.defined() ? running_mean.data<T>() : nullptr;
  T* rv = running_var.defined() ? running_var.data<T>() : nullptr;
  const double m = double(l.n * l.hw);
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < l.c; ++k) {
    double s = 0;
    for (int64_t i = 0; i < l.n; ++i)
      for (int64_t p = 0; p < l.hw; ++p) s += double(xp[l.offset(i, k) + p]);
    const double mean = s / m;
    // Two-pass variance: no cancellation when |mean| ≫ std.
    double ss = 0;
    for (int64_t i = 0; i < l.n; ++i)
      for (int64_t p = 0; p < l.hw; ++p) {
        const double d = double(xp[l.offset(i, k) + p]) - mean;
        ss += d * d;
      }
    const double var = ss / m;
    const double invstd = 1.0 / std::sqrt(var + eps);
    const double scale = double(g[k]) * invstd, shift = double(b[k]) - mean * scale;
    for (int64_t i = 0; i < l.n; ++i)
      for (int64_t p = 0; p < l.hw; ++p)
        yp[l.offset(i, k) + p] = T(double(xp[l.offset(i, k) + p]) * scale + shift);
    mean_out[k] = T(mean);
    invstd_out[k] = T(invstd);
    if (rm) rm[k] = T((1 - momentum) * double(rm[k]) + momentum * mean);
    if (rv) rv[k] = T((1 - momentum) * double(rv[k]) + momentum * var * m / (m - 1));
  }
}

template <class T>
void train_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                    const Tensor& dy, const Tensor& x, const Tensor& gamma,
                    const Tensor& save_mean, const Tensor& save_invstd) {
  const Layout l(x);
  const T* xp = x.data<T>();
  const T* dyp = dy.data<T>();
  T* dxp = dx.data<T>();
  const double m = double(l.n * l.hw);
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < l.c; ++k) {
    const double mean = double(save_mean.data<T>()[k]), invstd = double(save_invstd.data<T>()[k]);
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t i = 0; i < l.n; ++i)
      for (int64_t p = 0; p < l.hw; ++p) {
        const int64_t o = l.offset(i, k) + p;
        sum_dy += double(dyp[o]);
        sum_dy_xhat += double(dyp[o]) * (double(xp[o]) - mean) * invstd;
      }
    const double a = double(gamma.data<T>()[k]) * invstd / m;
    for (int64_t i = 0; i < l.n; ++i)
      for (int64_t p = 0; p < l.hw; ++p) {
        const int64_t o = l.offset(i, k) + p;
        const double xhat = (double(xp[o]) - mean) * invstd;
        dxp[o] = T(a * (m * double(dyp[o]) - sum_dy - xhat * sum_dy_xhat));
      }
    dgamma.data<T>()[k] = T(sum_dy_xhat);
    dbeta.data<T>()[k] = T(sum_dy);
  }
}

template <class T>
void eval_forward(const Tensor& y, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                  const Tensor& running_mean, const Tensor& running_var, double eps) {
  const Layout l(x);
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < l.c; ++k) {
    const double invstd = 1.0 / std::sqrt(double(running_var.data<T>()[k]) + eps);
    const double scale = double(gamma.data<T>()[k]) * invstd;
    const double shift = double(beta.data<T>()[k]) - double(running_mean.data<T>()[k]) * scale;
    for (int64_t i = 0; i < l.n; ++i)
      for (int64_t p = 0; p < l.hw; ++p)
        yp[l.offset(i, k) + p] = T(double(xp[l.offset(i, k) + p]) * scale + shift);
  }
}

}  // namespace

void batch_norm_train_forward_cpu(const Tensor& y, const Tensor& save_mean,
                                  const Tensor& save_invstd, const Tensor& x,
                                  const Tensor& gamma, const Tensor& beta,
                                  const Tensor& running_mean, const Tensor& running_var,
                                  double momentum, double eps) {
  CBST_DISPATCH_FLOAT_TYPES(x.dtype(), "batch_norm2d", [&] {
    train_forward<scalar_t>(y, save_mean, save_invstd, x, gamma, beta, running_mean,
                            running_var, momentum, eps);
  });
}

void batch_norm_train_backward_cpu(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                                   const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                   const Tensor& save_mean, const Tensor& save_invstd,
                                   double /*eps*/) {
  CBST_DISPATCH_FLOAT_TYPES(x.dtype(), "batch_norm2d backward", [&] {
    train_backward<scalar_t>(dx, dgamma, dbeta, dy, x, gamma, save_mean, save_invstd);
  });
}

void batch_norm_eval_forward_cpu(const Tensor& y, const Tensor& x, const Tensor& gamma,
                                 const Tensor& beta, const Tensor& running_mean,
                                 const Tensor& running_var, double eps) {
  CBST_DISPATCH_FLOAT_TYPES(x.dtype(), "batch_norm2d", [&] {
    eval_forward<scalar_t>(y, x, gamma, beta, running_mean, running_var, eps);
  });
}

}  // namespace cbst::conv_detail
