// Batch normalisation on the CPU: one pass per channel, f64 accumulation (the sums run over
// N·H·W elements). Channels are independent and split across OpenMP threads.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "engine/dispatch.h"
#include "layers/conv_backend.h"

namespace cbst::conv_detail {

namespace {

// Channels whose sums one thread runs side by side (train_forward, train_backward).
constexpr int64_t kGroup = 4;

// f(std::integral_constant<int64_t, count>) for count in 1..kGroup: the group loops with a
// width known at compile time, so their chains stay in registers.
template <class F>
void per_group(int64_t count, F&& f) {
  switch (count) {
    case 4: f(std::integral_constant<int64_t, 4>{}); break;
    case 3: f(std::integral_constant<int64_t, 3>{}); break;
    case 2: f(std::integral_constant<int64_t, 2>{}); break;
    default: f(std::integral_constant<int64_t, 1>{}); break;
  }
}

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
  const T* gm = gamma.data<T>();
  const T* b = beta.data<T>();
  T* mean_out = save_mean.data<T>();
  T* invstd_out = save_invstd.data<T>();
  T* rm = running_mean.defined() ? running_mean.data<T>() : nullptr;
  T* rv = running_var.defined() ? running_var.data<T>() : nullptr;
  const double m = double(l.n * l.hw);
  // Channels in groups of kGroup: each channel's sums run in the order of the one-channel
  // loop (so the bits are the same), but the group's independent chains of f64 additions
  // overlap in the pipeline instead of waiting on one another.
  const int64_t groups = (l.c + kGroup - 1) / kGroup;
#pragma omp parallel for schedule(static)
  for (int64_t grp = 0; grp < groups; ++grp) {
    const int64_t k0 = grp * kGroup, count = std::min(kGroup, l.c - k0);
    double s[kGroup] = {}, ss[kGroup] = {}, mean[kGroup] = {};
    per_group(count, [&](auto width) {
      constexpr int64_t G = decltype(width)::value;
      for (int64_t i = 0; i < l.n; ++i) {
        const T* xs[G];
        for (int64_t g = 0; g < G; ++g) xs[g] = xp + l.offset(i, k0 + g);
        for (int64_t p = 0; p < l.hw; ++p)
          for (int64_t g = 0; g < G; ++g) s[g] += double(xs[g][p]);
      }
      for (int64_t g = 0; g < G; ++g) mean[g] = s[g] / m;
      // Two-pass variance: no cancellation when |mean| ≫ std.
      for (int64_t i = 0; i < l.n; ++i) {
        const T* xs[G];
        for (int64_t g = 0; g < G; ++g) xs[g] = xp + l.offset(i, k0 + g);
        for (int64_t p = 0; p < l.hw; ++p)
          for (int64_t g = 0; g < G; ++g) {
            const double d = double(xs[g][p]) - mean[g];
            ss[g] += d * d;
          }
      }
    });
    for (int64_t g = 0; g < count; ++g) {
      const int64_t k = k0 + g;
      const double var = ss[g] / m;
      const double invstd = 1.0 / std::sqrt(var + eps);
      const double scale = double(gm[k]) * invstd, shift = double(b[k]) - mean[g] * scale;
      for (int64_t i = 0; i < l.n; ++i)
        for (int64_t p = 0; p < l.hw; ++p)
          yp[l.offset(i, k) + p] = T(double(xp[l.offset(i, k) + p]) * scale + shift);
      mean_out[k] = T(mean[g]);
      invstd_out[k] = T(invstd);
      if (rm) rm[k] = T((1 - momentum) * double(rm[k]) + momentum * mean[g]);
      if (rv) rv[k] = T((1 - momentum) * double(rv[k]) + momentum * var * m / (m - 1));
    }
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
  const int64_t groups = (l.c + kGroup - 1) / kGroup;  // as in train_forward
#pragma omp parallel for schedule(static)
  for (int64_t grp = 0; grp < groups; ++grp) {
    const int64_t k0 = grp * kGroup, count = std::min(kGroup, l.c - k0);
    double mean[kGroup] = {}, invstd[kGroup] = {}, sum_dy[kGroup] = {}, sum_dy_xhat[kGroup] = {};
    for (int64_t g = 0; g < count; ++g) {
      mean[g] = double(save_mean.data<T>()[k0 + g]);
      invstd[g] = double(save_invstd.data<T>()[k0 + g]);
    }
    per_group(count, [&](auto width) {
      constexpr int64_t G = decltype(width)::value;
      for (int64_t i = 0; i < l.n; ++i) {
        const T *xs[G], *dys[G];
        for (int64_t g = 0; g < G; ++g) {
          xs[g] = xp + l.offset(i, k0 + g);
          dys[g] = dyp + l.offset(i, k0 + g);
        }
        for (int64_t p = 0; p < l.hw; ++p)
          for (int64_t g = 0; g < G; ++g) {
            sum_dy[g] += double(dys[g][p]);
            sum_dy_xhat[g] += double(dys[g][p]) * (double(xs[g][p]) - mean[g]) * invstd[g];
          }
      }
    });
    for (int64_t g = 0; g < count; ++g) {
      const int64_t k = k0 + g;
      const double a = double(gamma.data<T>()[k]) * invstd[g] / m;
      for (int64_t i = 0; i < l.n; ++i)
        for (int64_t p = 0; p < l.hw; ++p) {
          const int64_t o = l.offset(i, k) + p;
          const double xhat = (double(xp[o]) - mean[g]) * invstd[g];
          dxp[o] = T(a * (m * double(dyp[o]) - sum_dy[g] - xhat * sum_dy_xhat[g]));
        }
      dgamma.data<T>()[k] = T(sum_dy_xhat[g]);
      dbeta.data<T>()[k] = T(sum_dy[g]);
    }
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
