// Convolution on the CPU: im2col + GEMM (kern::cpu::gemm: OpenBLAS when present).
//
// For one sample, im2col lays the receptive fields out as a matrix
//   col[(c·kh + i)·kw + j][oh·Wo + ow] = x[c][oh·s − p + i·d][ow·s − p + j·d]   (0 outside)
// of shape (Ci·kh·kw, Ho·Wo), so that
//   forward          y_n  = W · col                (Co, Ho·Wo)
//   backward data    dx_n = col2im(Wᵀ · dy_n)      col2im scatters-adds back into the image
//   backward filter  dW  += dy_n · colᵀ            summed over the batch
// with W viewed as (Co, Ci·kh·kw). A 1×1 kernel with stride 1 and no padding needs no im2col
// (col is the image itself). Channels of im2col/col2im are independent, so they are split
// across OpenMP threads; results do not depend on the thread count.
#include <algorithm>
#include <vector>

#include "engine/dispatch.h"
#include "engine/kernels.h"
#include "layers/conv_backend.h"

namespace cbst::conv_detail {

namespace {

struct Dims {
  int64_t n, ci, h, w;     // input
  int64_t co, kh, kw;      // filter
  int64_t ho, wo;          // output
  int64_t ckk() const { return ci * kh * kw; }
  int64_t hwo() const { return ho * wo; }
};

Dims dims_of(const Tensor& x_shape_src, const Tensor& w, const ConvGeometry& g) {
  Dims d{x_shape_src.size(0), x_shape_src.size(1), x_shape_src.size(2), x_shape_src.size(3),
         w.size(0), w.size(2), w.size(3), 0, 0};
  d.ho = conv_out_size(d.h, d.kh, g);
  d.wo = conv_out_size(d.w, d.kw, g);
  return d;
}

bool is_pointwise(const Dims& d, const ConvGeometry& g) {
  return d.kh == 1 && d.kw == 1 && g.stride == 1 && g.pad == 0;
}

template <class T>
void im2col(T* col, const T* x, const Dims& d, const ConvGeometry& g) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < d.ci; ++c)
    for (int64_t i = 0; i < d.kh; ++i)
      for (int64_t j = 0; j < d.kw; ++j) {
        T* row = col + ((c * d.kh + i) * d.kw + j) * d.hwo();
        for (int64_t oh = 0; oh < d.ho; ++oh) {
          const int64_t ih = oh * g.stride - g.pad + i * g.dilation;
          T* out = row + oh * d.wo;
          if (ih < 0 || ih >= d.h) {
            for (int64_t ow = 0; ow < d.wo; ++ow) out[ow] = T(0);
            continue;
          }
          const T* in = x + (c * d.h + ih) * d.w;
          for (int64_t ow = 0; ow < d.wo; ++ow) {
            const int64_t iw = ow * g.stride - g.pad + j * g.dilation;
            out[ow] = (iw >= 0 && iw < d.w) ? in[iw] : T(0);
          }
        }
      }
}

// x (zeroed by the caller) += the columns scattered back to their pixels.
template <class T>
void col2im(T* x, const T* col, const Dims& d, const ConvGeometry& g) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < d.ci; ++c)
    for (int64_t i = 0; i < d.kh; ++i)
      for (int64_t j = 0; j < d.kw; ++j) {
        const T* row = col + ((c * d.kh + i) * d.kw + j) * d.hwo();
        for (int64_t oh = 0; oh < d.ho; ++oh) {
          const int64_t ih = oh * g.stride - g.pad + i * g.dilation;
          if (ih < 0 || ih >= d.h) continue;
          T* out = x + (c * d.h + ih) * d.w;
          const T* in = row + oh * d.wo;
          for (int64_t ow = 0; ow < d.wo; ++ow) {
            const int64_t iw = ow * g.stride - g.pad + j * g.dilation;
            if (iw >= 0 && iw < d.w) out[iw] += in[ow];
          }
        }
      }
}

kern::GemmArgs gemm_args(DType dtype) {
  kern::GemmArgs a;
  a.dtype = dtype;
  return a;
}

template <class T>
void forward(const Tensor& y, const Tensor& x, const Tensor& w, const ConvGeometry& g) {
  const Dims d = dims_of(x, w, g);
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  std::vector<T> col(is_pointwise(d, g) ? 0 : size_t(d.ckk() * d.hwo()));
  for (int64_t n = 0; n < d.n; ++n) {
    const T* xn = xp + n * d.ci * d.h * d.w;
    if (!col.empty()) im2col(col.data(), xn, d, g);
    kern::GemmArgs a = gemm_args(x.dtype());
    a.m = d.co, a.n = d.hwo(), a.k = d.ckk();
    a.a = w.data<T>(), a.lda = d.ckk();
    a.b = col.empty() ? xn : col.data(), a.ldb = d.hwo();
    a.c = yp + n * d.co * d.hwo(), a.ldc = d.hwo();
    kern::cpu::gemm(a);
  }
}

template <class T>
void backward_data(const Tensor& dx, const Tensor& dy, const Tensor& w, const ConvGeometry& g) {
  const Dims d = dims_of(dx, w, g);
  const bool pointwise = is_pointwise(d, g);
  T* dxp = dx.data<T>();
  const T* dyp = dy.data<T>();
  std::vector<T> col(pointwise ? 0 : size_t(d.ckk() * d.hwo()));
  for (int64_t n = 0; n < d.n; ++n) {
    T* dxn = dxp + n * d.ci * d.h * d.w;
    kern::GemmArgs a = gemm_args(dx.dtype());
    a.trans_a = true;
    a.m = d.ckk(), a.n = d.hwo(), a.k = d.co;
    a.a = w.data<T>(), a.lda = d.ckk();
    a.b = dyp + n * d.co * d.hwo(), a.ldb = d.hwo();
    a.c = pointwise ? dxn : col.data(), a.ldc = d.hwo();
    kern::cpu::gemm(a);
    if (!pointwise) {
      std::fill(dxn, dxn + d.ci * d.h * d.w, T(0));
      col2im(dxn, col.data(), d, g);
    }
  }
}

template <class T>
void backward_filter(const Tensor& dw, const Tensor& dy, const Tensor& x, const ConvGeometry& g) {
  const Dims d = dims_of(x, dw, g);
  const bool pointwise = is_pointwise(d, g);
  const T* xp = x.data<T>();
  const T* dyp = dy.data<T>();
  std::vector<T> col(pointwise ? 0 : size_t(d.ckk() * d.hwo()));
  for (int64_t n = 0; n < d.n; ++n) {
    const T* xn = xp + n * d.ci * d.h * d.w;
    if (!pointwise) im2col(col.data(), xn, d, g);
    kern::GemmArgs a = gemm_args(x.dtype());
    a.trans_b = true;
    a.m = d.co, a.n = d.ckk(), a.k = d.hwo();
    a.a = dyp + n * d.co * d.hwo(), a.lda = d.hwo();
    a.b = pointwise ? xn : col.data(), a.ldb = d.hwo();
    a.c = dw.data<T>(), a.ldc = d.ckk();
    a.beta = n == 0 ? 0.0 : 1.0;
    kern::cpu::gemm(a);
  }
  if (d.n == 0) std::fill(dw.data<T>(), dw.data<T>() + dw.numel(), T(0));
}

template <class T>
void add_bias(const Tensor& y, const Tensor& b) {
  const int64_t n = y.size(0), c = y.size(1), hw = y.size(2) * y.size(3);
  T* yp = y.data<T>();
  const T* bp = b.data<T>();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < c; ++k) {
      T* row = yp + (i * c + k) * hw;
      for (int64_t p = 0; p < hw; ++p) row[p] += bp[k];
    }
}

template <class T>
void channel_sum(const Tensor& db, const Tensor& dy) {
  const int64_t n = dy.size(0), c = dy.size(1), hw = dy.size(2) * dy.size(3);
  const T* g = dy.data<T>();
  T* out = db.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < c; ++k) {
    double acc = 0;  // double accumulation: the sum runs over N·H·W elements
    for (int64_t i = 0; i < n; ++i) {
      const T* row = g + (i * c + k) * hw;
      for (int64_t p = 0; p < hw; ++p) acc += double(row[p]);
    }
    out[k] = T(acc);
  }
}

}  // namespace

void conv_forward_cpu(const Tensor& y, const Tensor& x, const Tensor& w, const ConvGeometry& g) {
  CBST_DISPATCH_FLOAT_TYPES(x.dtype(), "conv2d", [&] { forward<scalar_t>(y, x, w, g); });
}

void conv_backward_data_cpu(const Tensor& dx, const Tensor& dy, const Tensor& w,
                            const ConvGeometry& g) {
  CBST_DISPATCH_FLOAT_TYPES(dy.dtype(), "conv2d backward", [&] { backward_data<scalar_t>(dx, dy, w, g); });
}

void conv_backward_filter_cpu(const Tensor& dw, const Tensor& dy, const Tensor& x,
                              const ConvGeometry& g) {
  CBST_DISPATCH_FLOAT_TYPES(dy.dtype(), "conv2d backward", [&] { backward_filter<scalar_t>(dw, dy, x, g); });
}

void add_channel_bias_cpu(const Tensor& y, const Tensor& b) {
  CBST_DISPATCH_FLOAT_TYPES(y.dtype(), "conv bias", [&] { add_bias<scalar_t>(y, b); });
}

void channel_sum_cpu(const Tensor& db, const Tensor& dy) {
  CBST_DISPATCH_FLOAT_TYPES(dy.dtype(), "conv bias backward", [&] { channel_sum<scalar_t>(db, dy); });
}

}  // namespace cbst::conv_detail
