// CPU softmax cross-entropy: the specification. Per-pixel terms are computed in parallel
// into a buffer and summed in pixel order in double, so the result does not depend on the
// thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/cpu/exp.h"
#include "engine/dispatch.h"
#include "layers/pixel_blocks.h"
#include "layers/softmax_cross_entropy_kernels.h"

namespace cbst::layer_kernels::cpu {

namespace {

template <class L>
void labels_as_i64(const Tensor& labels, std::vector<int64_t>& out) {
  const L* p = labels.data<L>();
  const int64_t n = labels.numel();
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = int64_t(p[i]);
}

// The labels as i64, in a buffer of this thread that keeps its capacity: a fresh megabyte per
// call is fresh pages (page faults) on every step.
const std::vector<int64_t>& read_labels(const Tensor& labels) {
  thread_local std::vector<int64_t> out;
  out.resize(size_t(labels.numel()));
  switch (labels.dtype()) {
    case DType::u8: labels_as_i64<uint8_t>(labels, out); break;
    case DType::i32: labels_as_i64<int32_t>(labels, out); break;
    case DType::i64: labels_as_i64<int64_t>(labels, out); break;
    default: CBST_THROW("softmax_cross_entropy: unsupported label dtype ", dtype_name(labels.dtype()));
  }
  return out;
}

// One class row of a block's gradient: s·(softmax − one-hot), 0 where lab < 0. Without
// branches and through restrict pointers, so that it vectorises; the pixels left out are
// zeroed after.
template <class T>
void gradient_row(T* __restrict dc, const T* __restrict s, const T* __restrict e, const int32_t* __restrict lab,
                  int32_t c, int64_t len, bool any_off) {
  for (int64_t q = 0; q < len; ++q) {
    const T hot = lab[q] == c ? T(1) : T(0);  // T(lab[q] == c) would not vectorise (GCC 12)
    dc[q] = s[q] * (e[q] - hot);
  }
  if (any_off)
    for (int64_t q = 0; q < len; ++q) dc[q] = lab[q] < 0 ? T(0) : dc[q];
}

}  // namespace

int64_t cross_entropy_forward(const Tensor& loss, const Tensor& weight_sum, const Tensor& lse,
                              const Tensor& logits, const Tensor& labels, const Tensor& weights,
                              int64_t ignore_index) {
  const int64_t n = logits.size(0), classes = logits.size(1);
  const int64_t inner = labels.numel() / n;
  const std::vector<int64_t>& y = read_labels(labels);
  for (int64_t label : y)
    if (label != ignore_index && (label < 0 || label >= classes)) return label;
  CBST_DISPATCH_FLOAT_TYPES(logits.dtype(), "softmax_cross_entropy", [&] {
    const scalar_t* x = logits.data<scalar_t>();
    const scalar_t* w = weights.defined() ? weights.data<scalar_t>() : nullptr;
    scalar_t* plse = lse.data<scalar_t>();
    const int64_t pixels = n * inner;
    // Reused buffers of this thread (see read_labels); the loops below reach them through
    // plain pointers, since a thread_local named inside the parallel region would be the
    // worker thread's own.
    thread_local std::vector<double> term_buffer, weight_buffer;
    term_buffer.assign(size_t(pixels), 0.0);
    weight_buffer.assign(size_t(pixels), 0.0);
    double* term = term_buffer.data();
    double* weight = weight_buffer.data();
    // Each pixel's arithmetic is the per-pixel recipe unchanged (max, then Σ exp(x − m) in
    // class order, then m + log), so the bits are those of a pixel-at-a-time loop.
    for_each_pixel_block(n, inner, [&](int64_t img, int64_t q0, int64_t len) {
      const scalar_t* xs = x + img * classes * inner + q0;
      scalar_t m[kPixelBlock], total[kPixelBlock], e[kPixelBlock];
      max_and_exp_sum(m, total, e, xs, classes, inner, len);
      for (int64_t q = 0; q < len; ++q) {
        const int64_t p = img * inner + q0 + q;
        const scalar_t l = m[q] + std::log(total[q]);
        plse[p] = l;
        const int64_t label = y[size_t(p)];
        if (label == ignore_index) continue;
        const double wy = w ? double(w[label]) : 1.0;
        term[p] = wy * double(l - xs[label * inner + q]);
        weight[p] = wy;
      }
    });
    double total_term = 0.0, total_weight = 0.0;
    for (int64_t p = 0; p < pixels; ++p) {
      total_term += term[p];
      total_weight += weight[p];
    }
    loss.data<scalar_t>()[0] = scalar_t(total_weight != 0.0 ? total_term / total_weight : 0.0);
    weight_sum.data<scalar_t>()[0] = scalar_t(total_weight);
  });
  return kAllLabelsValid;
}

void cross_entropy_backward(const Tensor& dx, const Tensor& g, const Tensor& logits,
                            const Tensor& labels, const Tensor& weights, const Tensor& lse,
                            const Tensor& weight_sum, int64_t ignore_index) {
  const int64_t n = logits.size(0), classes = logits.size(1);
  const int64_t inner = labels.numel() / n;
  const std::vector<int64_t>& y = read_labels(labels);
  CBST_DISPATCH_FLOAT_TYPES(logits.dtype(), "softmax_cross_entropy_backward", [&] {
    const scalar_t* x = logits.data<scalar_t>();
    const scalar_t* w = weights.defined() ? weights.data<scalar_t>() : nullptr;
    const scalar_t* plse = lse.data<scalar_t>();
    scalar_t* d = dx.data<scalar_t>();
    const scalar_t total = weight_sum.data<scalar_t>()[0];
    const scalar_t scale = total != scalar_t(0) ? g.data<scalar_t>()[0] / total : scalar_t(0);
    // Every element's expression is the per-element one, so the bits do not change.
    for_each_pixel_block(n, inner, [&](int64_t img, int64_t q0, int64_t len) {
      const int64_t base = img * classes * inner + q0, p0 = img * inner + q0;
      scalar_t s[kPixelBlock];
      int32_t lab[kPixelBlock];  // 32 bits, so that the loop over a class row vectorises
      bool any_off = false;
      for (int64_t q = 0; q < len; ++q) {
        const int64_t label = y[size_t(p0 + q)];
        const bool off = label == ignore_index || scale == scalar_t(0);
        lab[q] = off ? -1 : int32_t(label);
        any_off |= off;
        s[q] = off ? scalar_t(0) : scale * (w ? w[label] : scalar_t(1));
      }
      for (int64_t c = 0; c < classes; ++c) {
        const scalar_t* xc = x + base + c * inner;
        scalar_t* dc = d + base + c * inner;
        scalar_t e[kPixelBlock];
        for (int64_t q = 0; q < len; ++q) e[q] = xc[q] - plse[p0 + q];
        kern::cpu::exp_n(e, e, len);
        gradient_row(dc, s, e, lab, int32_t(c), len, any_off);
      }
    });
  });
}

}  // namespace cbst::layer_kernels::cpu
