// CPU max pooling: the specification. Parallel over (n, c) planes.
#include <cmath>

#include "engine/dispatch.h"
#include "layers/max_pool2d_kernels.h"
#include "layers/parallel_for.h"

namespace cbst::layer_kernels::cpu {

void max_pool2d_forward(const Tensor& y, const Tensor& indices, const Tensor& x,
                        const MaxPool2dOptions& o) {
  const int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
  const int64_t ho = y.size(2), wo = y.size(3);
  CBST_DISPATCH_FLOAT_TYPES(x.dtype(), "max_pool2d", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    int64_t* pi = indices.data<int64_t>();
    // The first maximum in row-major window order wins; a NaN wins and ends the search.
    auto pool_one = [&](const scalar_t* xs, int64_t plane, int64_t i, int64_t j) {
      const int64_t h0 = i * o.stride - o.pad, w0 = j * o.stride - o.pad;
      int64_t best = -1;
      scalar_t best_value = 0;
      for (int64_t r = std::max<int64_t>(h0, 0); r < std::min(h0 + o.kernel, h); ++r)
        for (int64_t c = std::max<int64_t>(w0, 0); c < std::min(w0 + o.kernel, w); ++c) {
          const scalar_t v = xs[r * w + c];
          if (best < 0 || v > best_value || std::isnan(v)) {
            best = r * w + c;
            best_value = v;
            if (std::isnan(v)) goto done;
          }
        }
    done:
      const int64_t k = (plane * ho + i) * wo + j;
      py[k] = best_value;
      pi[k] = best;
    };
    // 2×2 windows at stride 2 without padding (VGG's and FCN's pools): the same rule on the
    // four values of a window that lies inside the image, without the bounds and the loop.
    // Kept apart from the general interior loop below on purpose: that loop, even with the
    // kernel size fixed at compile time, took 1.3–1.45× as long on FCN8s's pool1.
    const bool two_by_two = o.kernel == 2 && o.stride == 2 && o.pad == 0;
    parallel_for(planes, ho * wo * o.kernel * o.kernel, [&](int64_t plane) {
      const scalar_t* xs = px + plane * h * w;
      for (int64_t i = 0; i < ho; ++i) {
        int64_t j = 0;
        if (two_by_two && 2 * i + 1 < h) {
          const scalar_t* r0 = xs + 2 * i * w;
          const scalar_t* r1 = r0 + w;
          scalar_t* yo = py + (plane * ho + i) * wo;
          int64_t* io = pi + (plane * ho + i) * wo;
          for (; j < wo && 2 * j + 1 < w; ++j) {
            const int64_t c = 2 * j;
            scalar_t b = r0[c];
            int64_t at = 0;
            const scalar_t v[3] = {r0[c + 1], r1[c], r1[c + 1]};
            for (int k = 0; k < 3; ++k) {  // branch-free: data-dependent branches mispredict
              const bool take = (v[k] > b) | ((v[k] != v[k]) & (b == b));
              b = take ? v[k] : b;
              at = take ? k + 1 : at;
            }
            yo[j] = b;
            io[j] = (2 * i + (at >> 1)) * w + c + (at & 1);
          }
        }
        // Other windows that lie inside the image (DeepLab's 3×3/2 stem pool away from the
        // border): the same rule, branch-free, without the bounds.
        const int64_t h0 = i * o.stride - o.pad;
        if (!two_by_two && h0 >= 0 && h0 + o.kernel <= h) {
          for (; j < wo; ++j) {
            const int64_t w0 = j * o.stride - o.pad;
            if (w0 < 0) {
              pool_one(xs, plane, i, j);
              continue;
            }
            if (w0 + o.kernel > w) break;
            const scalar_t* win = xs + h0 * w + w0;
            scalar_t b = win[0];
            int64_t at = h0 * w + w0;
            for (int64_t r = 0; r < o.kernel; ++r)
              for (int64_t c = r == 0 ? 1 : 0; c < o.kernel; ++c) {
                const scalar_t v = win[r * w + c];
                const bool take = (v > b) | ((v != v) & (b == b));
                b = take ? v : b;
                at = take ? (h0 + r) * w + w0 + c : at;
              }
            const int64_t k = (plane * ho + i) * wo + j;
            py[k] = b;
            pi[k] = at;
          }
        }
        for (; j < wo; ++j) pool_one(xs, plane, i, j);
      }
    });
  });
}

void max_pool2d_backward(const Tensor& dx, const Tensor& dy, const Tensor& indices,
                         const MaxPool2dOptions&) {
  const int64_t planes = dx.size(0) * dx.size(1), hw = dx.size(2) * dx.size(3);
  const int64_t out_hw = dy.size(2) * dy.size(3);
  CBST_DISPATCH_FLOAT_TYPES(dx.dtype(), "max_pool2d_backward", [&] {
    scalar_t* pdx = dx.data<scalar_t>();
    const scalar_t* pdy = dy.data<scalar_t>();
    const int64_t* pi = indices.data<int64_t>();
    parallel_for(planes, out_hw, [&](int64_t plane) {
      for (int64_t k = 0; k < out_hw; ++k)
        pdx[plane * hw + pi[plane * out_hw + k]] += pdy[plane * out_hw + k];
    });
  });
}

}  // namespace cbst::layer_kernels::cpu
