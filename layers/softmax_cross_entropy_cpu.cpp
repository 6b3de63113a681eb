// CPU softmax cross-entropy: the specification. Per-pixel terms are computed in parallel
// into a buffer and summed in pixel order in double, so the result does not depend on the
// thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/dispatch.h"
#include "layers/parallel_for.h"
#include "layers/softmax_cross_entropy_kernels.h"

namespace cbst::layer_kernels::cpu {

namespace {

template <class L>
void labels_as_i64(const Tensor& labels, std::vector<int64_t>& out) {
  const L* p = labels.data<L>();
  for (int64_t i = 0; i < labels.numel(); ++i) out[size_t(i)] = int64_t(p[i]);
}

std::vector<int64_t> read_labels(const Tensor& labels) {
  std::vector<int64_t> out(size_t(labels.numel()));
  switch (labels.dtype()) {
    case DType::u8: labels_as_i64<uint8_t>(labels, out); break;
    case DType::i32: labels_as_i64<int32_t>(labels, out); break;
    case DType::i64: labels_as_i64<int64_t>(labels, out); break;
    default: CBST_THROW("softmax_cross_entropy: unsupported label dtype ", dtype_name(labels.dtype()));
  }
  return out;
}

}  // namespace

int64_t cross_entropy_forward(const Tensor& loss, const Tensor& weight_sum, const Tensor& lse,
                              const Tensor& logits, const Tensor& labels, const Tensor& weights,
                              int64_t ignore_index) {
  const int64_t n = logits.size(0), classes = logits.size(1);
  const int64_t inner = labels.numel() / n;
  const std::vector<int64_t> y = read_labels(labels);
  for (int64_t label : y)
    if (label != ignore_index && (label < 0 || label >= classes)) return label;
  CBST_DISPATCH_FLOAT_TYPES(logits.dtype(), "softmax_cross_entropy", [&] {
    const scalar_t* x = logits.data<scalar_t>();
    const scalar_t* w = weights.defined() ? weights.data<scalar_t>() : nullptr;
    scalar_t* plse = lse.data<scalar_t>();
    const int64_t pixels = n * inner;
    std::vector<double> term(size_t(pixels), 0.0), weight(size_t(pixels), 0.0);
    parallel_for(pixels, [&](int64_t p) {
      const scalar_t* xs = x + (p / inner) * classes * inner + p % inner;
      scalar_t m = xs[0];
      for (int64_t c = 1; c < classes; ++c) m = std::max(m, xs[c * inner]);
      scalar_t total = 0;
      for (int64_t c = 0; c < classes; ++c) total += std::exp(xs[c * inner] - m);
      const scalar_t l = m + std::log(total);
      plse[p] = l;
      const int64_t label = y[size_t(p)];
      if (label == ignore_index) return;
      const double wy = w ? double(w[label]) : 1.0;
      term[size_t(p)] = wy * double(l - xs[label * inner]);
      weight[size_t(p)] = wy;
    });
    double total_term = 0.0, total_weight = 0.0;
    for (int64_t p = 0; p < pixels; ++p) {
      total_term += term[size_t(p)];
      total_weight += weight[size_t(p)];
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
  const std::vector<int64_t> y = read_labels(labels);
  CBST_DISPATCH_FLOAT_TYPES(logits.dtype(), "softmax_cross_entropy_backward", [&] {
    const scalar_t* x = logits.data<scalar_t>();
    const scalar_t* w = weights.defined() ? weights.data<scalar_t>() : nullptr;
    const scalar_t* plse = lse.data<scalar_t>();
    scalar_t* d = dx.data<scalar_t>();
    const scalar_t total = weight_sum.data<scalar_t>()[0];
    const scalar_t scale = total != scalar_t(0) ? g.data<scalar_t>()[0] / total : scalar_t(0);
    const int64_t pixels = n * inner;
    parallel_for(pixels, [&](int64_t p) {
      const int64_t base = (p / inner) * classes * inner + p % inner;
      const int64_t label = y[size_t(p)];
      if (label == ignore_index || scale == scalar_t(0)) {
        for (int64_t c = 0; c < classes; ++c) d[base + c * inner] = 0;
        return;
      }
      const scalar_t s = scale * (w ? w[label] : scalar_t(1));
      for (int64_t c = 0; c < classes; ++c) {
        const int64_t k = base + c * inner;
        d[k] = s * (std::exp(x[k] - plse[p]) - (c == label ? scalar_t(1) : scalar_t(0)));
      }
    });
  });
}

}  // namespace cbst::layer_kernels::cpu
