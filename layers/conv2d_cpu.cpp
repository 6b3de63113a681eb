// Convolution on the CPU: im2col + GEMM (kern::cpu::gemm: OpenBLAS when present).
//
// For one sample, im2col lays the receptive fields out as a matrix
//   col[(c·kh + i)·kw + j][oh·Wo + ow] = x[c][oh·s − p + i·d][ow·s − p + j·d]   (0 outside)
// of shape (Ci·kh·kw, Ho·Wo), so that
//   forward          y_n  = W · col                (Co, Ho·Wo)
//   backward data    dx_n = col2im(Wᵀ · dy_n)      col2im scatters-adds back into the image
//   backward filter  dW  += dy_n · colᵀ            summed over the batch
// with W viewed as (Co, Ci·kh·kw). A 1×1 kernel with stride 1 and no padding needs no im2col
// (col is the image itself). Rows of im2col and channels of col2im are independent, so they
// are split across OpenMP threads; results do not depend on the thread count. Thin stride-1
// f32 layers take a direct kernel instead, forward and backward-data (direct_pays below).
// Every pass skips the output rows that see only padding (live_rows: 196 of the 326 of
// FCN8s's conv1_1, padded by 100), and a strided convolution's im2col reads the image split
// into its phases, so that each tap's row is a contiguous copy (Im2colSource). The phases are
// pure copies, so they change no bit. The skipped rows' outputs are the same zeros, and they add
// nothing to dx; backward-filter's GEMM then sums fewer terms (the skipped ones were all 0),
// which moves the last bits of such a layer's dW (OpenBLAS blocks its sums by position).
//
// Forward and backward-data work on bands of output rows so that the band's col matrix
// (about kBandBytes) is still in cache when the GEMM reads it or col2im scatters it; the full
// col of VGG's conv1_2 at 128 is 245 MB, written to memory and read back (backward data:
// zeroed too) per image. Bands compute the same sums as one pass:
//   forward         y[:, band] = W · col[:, band]: the same dot products;
//   backward data   col[:, band] = Wᵀ · dy[:, band], scattered band by band, last band first,
//                   which adds each pixel's terms in the tap order of one pass (col2im).
// With a GEMM that sums every element of C in one order wherever it lies in the call (the
// blocked kernel; OpenBLAS's AVX-512 SGEMM) they are the bits of one pass too. OpenBLAS's AVX2
// SGEMM sums a few columns of each call in another order (engine/cpu/gemm.cpp), so there the
// last bits follow the bands, which depend on the shape and kBandBytes, not on the threads.
// Layers whose weights outgrow a band run in one band (output_bands). Every band's GEMM keeps
// more than 10⁶ multiply-adds, above OpenBLAS's small-matrix path. Backward-filter sums over
// pixels, so bands would reorder its sums: it keeps the whole col.
// CBST_CPU_CONV_BAND_KB overrides kBandBytes (0: no bands), for tests and measurements.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/dispatch.h"
#include "engine/kernels.h"
#include "layers/conv2d_direct.h"
#include "layers/conv_backend.h"

namespace cbst::conv_detail {

namespace {

struct Dims {
  int64_t n, ci, h, w;     // input
  int64_t co, kh, kw;      // filter
  int64_t ho, wo;          // output
  int64_t live0 = 0, live1 = 0;  // the output rows [live0, live1) some tap reaches (live_rows)
  int64_t ckk() const { return ci * kh * kw; }
  int64_t hwo() const { return ho * wo; }
  int64_t live_cols() const { return (live1 - live0) * wo; }  // col's columns over the live rows
};

bool is_pointwise(const Dims& d, const ConvGeometry& g) {
  return d.kh == 1 && d.kw == 1 && g.stride == 1 && g.pad == 0;
}

// The output rows [a, b) within [oh0, oh1) whose input row oh·stride + offset lies in [0, h).
inline std::pair<int64_t, int64_t> rows_inside(int64_t offset, int64_t stride, int64_t h, int64_t oh0, int64_t oh1) {
  const int64_t first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;     // oh·s + offset ≥ 0
  const int64_t end = h - 1 - offset < 0 ? 0 : (h - 1 - offset) / stride + 1;  // oh·s + offset ≤ h − 1
  const int64_t a = std::clamp(first, oh0, oh1);
  return {a, std::clamp(end, a, oh1)};
}

// The output rows [live0, live1) that some tap row reaches inside the image: the hull of
// every tap's rows_inside. The rows outside see only padding, so they are 0 forward (before
// the bias) and add nothing to dx or dW, and every pass skips them. FCN8s's conv1_1 (padding
// 100) keeps 130 of its 326 rows; a convolution whose padding is within its reach keeps all.
std::pair<int64_t, int64_t> live_rows(const Dims& d, const ConvGeometry& g) {
  int64_t first = d.ho, end = 0;
  for (int64_t i = 0; i < d.kh; ++i) {
    const auto [a, b] = rows_inside(i * g.dilation - g.pad, g.stride, d.h, 0, d.ho);
    if (a < b) first = std::min(first, a), end = std::max(end, b);
  }
  return first < end ? std::pair{first, end} : std::pair<int64_t, int64_t>{0, 0};
}

Dims dims_of(const Tensor& x_shape_src, const Tensor& w, const ConvGeometry& g) {
  Dims d{x_shape_src.size(0), x_shape_src.size(1), x_shape_src.size(2), x_shape_src.size(3),
         w.size(0), w.size(2), w.size(3), 0, 0};
  d.ho = conv_out_size(d.h, d.kh, g);
  d.wo = conv_out_size(d.w, d.kw, g);
  std::tie(d.live0, d.live1) = live_rows(d, g);
  return d;
}

// The im2col matrix: uninitialised (im2col and the GEMM write all of it) and from the CPU
// block cache, so a layer does not pay for hundreds of MB of fresh zeroed pages per call.
template <class T>
class Workspace {
 public:
  explicit Workspace(int64_t n) : t_(n > 0 ? Tensor::empty({n}, dtype_of<T>) : Tensor()) {}
  bool empty() const { return !t_.defined(); }
  T* data() const { return t_.defined() ? t_.data<T>() : nullptr; }  // null for a pointwise conv

 private:
  Tensor t_;
};

// ⌊a / s⌋ for s > 0.
inline int64_t floor_div(int64_t a, int64_t s) { return a >= 0 ? a / s : -((-a + s - 1) / s); }

// A strided convolution's im2col reads the image split into its s² phases (s = stride > 1):
// plane (c, p, q) holds x[c][kr·s + p][kc·s + q] at (kr, kc), ⌈h/s⌉ × ⌈w/s⌉, 0 past the
// image's edge. Tap (i, j) then reads plane (c, ρ mod s, σ mod s) at (oh + ⌊ρ/s⌋, ow + ⌊σ/s⌋)
// with ρ = i·d − pad, σ = j·d − pad: contiguous runs, as in a stride-1 convolution. Gathering
// every s-th pixel instead, a dozen per row, took about a seventh of the demo model's
// stride-2 block's time (perf); the split takes a third of that.
struct Phases {
  int64_t s, hs, ws;
  int64_t image(const Dims& d) const { return s == 1 ? d.ci * d.h * d.w : d.ci * s * s * hs * ws; }
};

Phases phases_of(const Dims& d, const ConvGeometry& g) {
  const int64_t s = g.stride;
  return {s, (d.h + s - 1) / s, (d.w + s - 1) / s};
}

// The im2col source of every sample: x itself for stride 1, else its phases (Phases).
template <class T>
class Im2colSource {
 public:
  Im2colSource(const T* x, const Dims& d, const ConvGeometry& g)
      : x_(x), ph_(phases_of(d, g)), image_(ph_.image(d)), split_(ph_.s > 1 ? d.n * image_ : 0) {
    if (ph_.s == 1) return;
    const int64_t s = ph_.s, plane = ph_.hs * ph_.ws;
    T* out = split_.data();
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t c = 0; c < d.ci; ++c) {
        const T* in = x + (n * d.ci + c) * d.h * d.w;
        T* phases = out + n * image_ + c * s * s * plane;
        for (int64_t p = 0; p < s; ++p)
          for (int64_t kr = 0; kr < ph_.hs; ++kr) {
            const int64_t ih = kr * s + p;
            for (int64_t q = 0; q < s; ++q) {
              T* dst = phases + (p * s + q) * plane + kr * ph_.ws;
              const int64_t count = ih < d.h ? (d.w - q + s - 1) / s : 0;  // pixels q, q + s, … of row ih
              const T* src = in + ih * d.w + q;
              if (s == 2) {
                for (int64_t kc = 0; kc < count; ++kc) dst[kc] = src[2 * kc];
              } else {
                for (int64_t kc = 0; kc < count; ++kc) dst[kc] = src[kc * s];
              }
              std::fill(dst + count, dst + ph_.ws, T(0));
            }
          }
      }
  }
  const T* sample(int64_t n) const { return (ph_.s == 1 ? x_ : split_.data()) + n * image_; }
  const Phases& phases() const { return ph_; }

 private:
  const T* x_;
  Phases ph_;
  int64_t image_;
  Workspace<T> split_;
};

// col[(c·kh + i)·kw + j][(oh − oh0)·Wo + ow] for output rows [oh0, oh1), from one sample of
// an Im2colSource. Pure copies and zeros; on small maps (ResNet-38's 16×16 at dilation 12,
// the demo's 24×24) the per-row bookkeeping costs more than the copy, so the rows a tap
// never reaches are zeroed in one run, and where a plane row is as wide as an output row
// ("same" convolutions, and the phases of the demo's stride-2 layers) a tap copies all its
// rows in one run and then zeroes the columns that fall outside the image.
template <class T>
void im2col_row(T* col, const T* src, const Phases& ph, const Dims& d, const ConvGeometry& g, int64_t oh0,
                int64_t oh1, int64_t r) {
  const int64_t cols = (oh1 - oh0) * d.wo;
  const int64_t c = r / (d.kh * d.kw), i = r / d.kw % d.kh, j = r % d.kw;
  T* row = col + r * cols;
  const int64_t rho = i * g.dilation - g.pad, sigma = j * g.dilation - g.pad;  // ih = oh·s + ρ, iw = ow·s + σ
  const auto [a, b] = rows_inside(rho, g.stride, d.h, oh0, oh1);
  const auto [lo, hi] = rows_inside(sigma, g.stride, d.w, 0, d.wo);  // the columns inside, as the rows
  std::fill(row, row + (a - oh0) * d.wo, T(0));
  std::fill(row + (b - oh0) * d.wo, row + cols, T(0));
  // The plane this tap reads, its width, and the offsets of its row and column there:
  // out(oh, ow) = plane[(oh + row_offset)·width + ow + shift] for oh in [a, b), ow in [lo, hi).
  const int64_t s = ph.s, width = s == 1 ? d.w : ph.ws;
  const int64_t row_offset = floor_div(rho, s), shift = floor_div(sigma, s);
  const T* plane = s == 1 ? src + c * d.h * d.w
                          : src + ((c * s + (rho - row_offset * s)) * s + (sigma - shift * s)) * ph.hs * ph.ws;
  if (d.wo == width && std::abs(shift) < width && a < b) {
    // The tap's rows a..b are plane rows a + row_offset.. shifted by `shift`, so they are one
    // run of the plane; the columns each row's run takes from its neighbour row (or never
    // gets) are those outside [lo, hi), zeroed after.
    const T* from = plane + (a + row_offset) * width;
    T* dst = row + (a - oh0) * d.wo;
    const int64_t run = (b - a) * width;
    if (shift >= 0) std::copy(from + shift, from + run, dst);  // dst[k] = from[k + shift]
    else std::copy(from, from + run + shift, dst - shift);
    // Column by column down the rows: usually one or two columns of single stores, where a
    // fill per row would be two library calls per row.
    const auto zero_column = [&](int64_t ow) {
      for (int64_t oh = a; oh < b; ++oh) dst[(oh - a) * d.wo + ow] = T(0);
    };
    for (int64_t ow = 0; ow < lo; ++ow) zero_column(ow);
    for (int64_t ow = hi; ow < d.wo; ++ow) zero_column(ow);
    return;
  }
  for (int64_t oh = a; oh < b; ++oh) {
    const T* in = plane + (oh + row_offset) * width;
    T* out = row + (oh - oh0) * d.wo;
    for (int64_t ow = 0; ow < lo; ++ow) out[ow] = T(0);
    for (int64_t ow = lo; ow < hi; ++ow) out[ow] = in[ow + shift];
    for (int64_t ow = hi; ow < d.wo; ++ow) out[ow] = T(0);
  }
}

template <class T>
void im2col(T* col, const T* src, const Phases& ph, const Dims& d, const ConvGeometry& g, int64_t oh0, int64_t oh1) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < d.ckk(); ++r) im2col_row(col, src, ph, d, g, oh0, oh1, r);
}

// x += the columns of output rows [oh0, oh1) scattered back to their pixels. A pixel
// receives its terms in tap order (i, j); within a band the loops give that order, and since
// a later tap i reaches a pixel from an earlier output row, bands taken last-first keep it
// across bands: the sums are those of one pass over the whole col. (Scattering a strided
// convolution's taps into the phases of x, as im2col reads them, and merging after, gained
// nothing measurable on the demo model's stride-2 block.)
template <class T>
void col2im(T* x, const T* col, const Dims& d, const ConvGeometry& g, int64_t oh0, int64_t oh1) {
  const int64_t cols = (oh1 - oh0) * d.wo;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < d.ci; ++c)
    for (int64_t i = 0; i < d.kh; ++i)
      for (int64_t j = 0; j < d.kw; ++j) {
        const T* row = col + ((c * d.kh + i) * d.kw + j) * cols;
        const int64_t row_offset = i * g.dilation - g.pad, shift = j * g.dilation - g.pad;
        const auto [a, b] = rows_inside(row_offset, g.stride, d.h, oh0, oh1);  // as im2col
        const auto [lo, hi] = rows_inside(shift, g.stride, d.w, 0, d.wo);
        for (int64_t oh = a; oh < b; ++oh) {
          T* out = x + (c * d.h + oh * g.stride + row_offset) * d.w;
          const T* in = row + (oh - oh0) * d.wo;
          if (g.stride == 1) {  // one contiguous run between the pads, as in im2col
            for (int64_t ow = lo; ow < hi; ++ow) out[ow + shift] += in[ow];
            continue;
          }
          for (int64_t ow = lo; ow < hi; ++ow) out[ow * g.stride + shift] += in[ow];
        }
      }
}

constexpr int64_t kBandBytes = int64_t(4) << 20;
constexpr double kMinBandWork = 2e6;  // multiply-adds per band GEMM (see the top)

int64_t band_bytes() {
  const char* env = std::getenv("CBST_CPU_CONV_BAND_KB");
  return env ? int64_t(std::strtoll(env, nullptr, 10)) << 10 : kBandBytes;
}

// Balanced bands over `rows` rows of about band_bytes() of col each (`row_bytes` per row),
// or one band when banding would not pay (a small col).
std::vector<std::pair<int64_t, int64_t>> bands(int64_t rows, int64_t row_bytes) {
  const int64_t bytes = band_bytes();
  int64_t count = 1;
  if (bytes > 0 && row_bytes * rows > 2 * bytes) count = std::min(rows, (row_bytes * rows + bytes - 1) / bytes);
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t b = 0; b < count; ++b) out.emplace_back(rows * b / count, rows * (b + 1) / count);
  return out;
}

// Bands of output rows for forward and backward-data; one band for a pointwise convolution,
// when a band's GEMM (Co·Ci·kh·kw·rows·Wo multiply-adds either way) would be small, or when
// the weights alone outgrow a band: every band's GEMM packs all of W again, which then costs
// more than keeping the band's col in cache saves (ResNet-38's conv6a, 75 MB of weights over
// a 38 MB col, ran 1.6× slower in bands).
std::vector<std::pair<int64_t, int64_t>> output_bands(const Dims& d, const ConvGeometry& g, size_t elem) {
  const std::vector<std::pair<int64_t, int64_t>> one{{d.live0, d.live1}};  // the live rows only
  if (is_pointwise(d, g) || d.co * d.ckk() * int64_t(elem) >= band_bytes()) return one;
  auto out = bands(d.live1 - d.live0, d.ckk() * d.wo * int64_t(elem));
  for (auto& [lo, hi] : out) {
    if (double(d.co * d.ckk()) * double((hi - lo) * d.wo) <= kMinBandWork) return one;
    lo += d.live0, hi += d.live0;
  }
  return out;
}

// y_n's rows outside the live rows [live0, live1), which see only padding: 0 in every filter.
template <class T>
void zero_dead_rows(T* yn, const Dims& d) {
  if (d.live0 == 0 && d.live1 == d.ho) return;
  for (int64_t co = 0; co < d.co; ++co) {
    T* plane = yn + co * d.hwo();
    std::fill(plane, plane + d.live0 * d.wo, T(0));
    std::fill(plane + d.live1 * d.wo, plane + d.hwo(), T(0));
  }
}

kern::GemmArgs gemm_args(DType dtype) {
  kern::GemmArgs a;
  a.dtype = dtype;
  return a;
}

// Samples at once, one per thread, when each sample's convolution is small (one band):
// every thread then runs its samples' im2col and one GEMM each, instead of both threads
// meeting at a barrier in every im2col and splitting every small GEMM (the per-step fork and
// join, and packing op(A) once per half of C, were most of small-deeplabv3plus's conv time).
// The bits do not change: kern::cpu::gemm cuts a sample's product into the same blocks
// whether one thread runs them or the team shares them, and no sum runs across samples here.
// Backward-filter sums over the batch in sample order, so it stays sequential over samples.
// CBST_CPU_CONV_SAMPLES=0 turns this off (tests compare both ways).
int sample_team(const Dims& d, size_t bands) {
  const char* env = std::getenv("CBST_CPU_CONV_SAMPLES");
  if (env && std::strtol(env, nullptr, 10) == 0) return 1;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads < 2 || bands != 1 || d.n < threads) return 1;
  if (d.n % threads != 0 && d.n < 4 * int64_t(threads)) return 1;  // 3 samples on 2 threads: 2:1
  return threads;
}

template <class T>
void forward_band(T* col, const T* xn, const Phases& ph, T* yn, const T* w, const Dims& d, const ConvGeometry& g,
                  bool pointwise, int64_t oh0, int64_t oh1) {
  const int64_t cols = (oh1 - oh0) * d.wo;
  if (cols == 0) return;
  if (!pointwise) im2col(col, xn, ph, d, g, oh0, oh1);
  kern::GemmArgs a = gemm_args(dtype_of<T>);
  a.m = d.co, a.n = cols, a.k = d.ckk();
  a.a = w, a.lda = d.ckk();
  a.b = pointwise ? xn + oh0 * d.wo : col, a.ldb = pointwise ? d.hwo() : cols;
  a.c = yn + oh0 * d.wo, a.ldc = d.hwo();
  kern::cpu::gemm(a);
}

// The direct kernel (conv2d_direct.h) for thin f32 layers. Each output is 0 + one chain of
// fused multiply-adds in the taps' order, so the bits follow from the shape alone, never from
// the thread count. Forward, they are the GEMM path's bits wherever OpenBLAS's SGEMM sums
// each element as one chain in k order (its AVX-512 kernel, for K ≤ 320); its AVX2 kernel
// (Haswell, Zen up to Zen 3) sums a few columns of each call in another order, so there the
// two paths differ in the last bits of those columns. Backward-data sums in another order
// than col2im's (the taps reversed, channel-major), so its last bits differ from the GEMM
// path's on every CPU. CBST_CPU_CONV_DIRECT=0 turns the direct kernel off and
// CBST_CPU_CONV_DIRECT=avx2 keeps it to 256-bit vectors (tests compare each way).
//
// Where it pays, as measured on the AVX2 Zen 3 (README "CPU performance"): stride 1, not pointwise,
// and a GEMM that runs below its rate, which is when its K (the chain: Ci·kh·kw forward,
// Co·kh·kw backward-data) is short or its M (the filters the direct kernel computes: Co
// forward, Ci backward-data) is thin; at least 4 of those filters (its register block) and
// an output 16 wide (two vectors: a 12-wide map leaves a third of the row to scalar code, and
// the demo model's dilated 12² layers ran ten times slower direct); and a product above the
// small-matrix size.
constexpr int64_t kDirectMaxK = 320, kDirectThinM = 32;

bool direct_pays(const Dims& d, const ConvGeometry& g, int64_t chain, int64_t filters, int64_t width) {
  return g.stride == 1 && !is_pointwise(d, g) && (chain <= kDirectMaxK || filters <= kDirectThinM) && filters >= 4 &&
         width >= 16 && d.n > 0 && d.ho > 0 && double(d.co * d.ckk()) * double(d.hwo()) > kMinBandWork &&
         direct_forward_available();
}

bool direct_forward_applies(const Dims& d, const ConvGeometry& g) { return direct_pays(d, g, d.ckk(), d.co, d.wo); }

// Backward-data as a forward convolution of dy: dx[c] = Σ_co wt[c][co] ⋆ dy[co] with the
// filters transposed and turned by 180° and dy padded by dilation·(k − 1) − pad, which gives
// dx's own size. Square kernels with pad ≤ dilation·(k − 1) only.
bool direct_backward_applies(const Dims& d, const ConvGeometry& g) {
  return d.kh == d.kw && g.pad <= g.dilation * (d.kh - 1) && direct_pays(d, g, d.co * d.kh * d.kw, d.ci, d.w);
}

std::atomic<int64_t> direct_forwards{0}, direct_backwards{0};

// Rows [oh0, oh1) of y_n = the direct kernel over x_n for n samples (`in` and `out` floats
// apart), each padded into a workspace first; samples per thread when the batch divides, else
// rows per thread.
void direct_run(float* y, const float* x, const float* w, const DirectGeometry& q, const Dims& d, int64_t in,
                int64_t out, int64_t oh0, int64_t oh1) {
  const int64_t padded = q.ci * q.hp * q.wp;
  const int team = sample_team(d, 1);
  if (team > 1) {
    Workspace<float> pads(padded * team);
#pragma omp parallel for schedule(static) num_threads(team)
    for (int64_t n = 0; n < d.n; ++n) {
      float* xp = pads.data() + omp_get_thread_num() * padded;
      pad_image(xp, x + n * in, q);
      direct_forward_rows(y + n * out, xp, w, q, oh0, oh1);
    }
    return;
  }
  // One range of rows per thread: each call sets up the kernel's tap offsets once.
  Workspace<float> pad(padded);
  for (int64_t n = 0; n < d.n; ++n) {
    pad_image(pad.data(), x + n * in, q);
#pragma omp parallel
    {
      const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t rows = oh1 - oh0;
      direct_forward_rows(y + n * out, pad.data(), w, q, oh0 + rows * t / threads, oh0 + rows * (t + 1) / threads);
    }
  }
}

void direct_forward(float* y, const float* x, const float* w, const Dims& d, const ConvGeometry& g) {
  direct_forwards.fetch_add(1, std::memory_order_relaxed);
  const DirectGeometry q{d.ci, d.h, d.w, d.h + 2 * g.pad, d.w + 2 * g.pad, d.co, d.kh, d.kw, g.pad, g.dilation,
                         d.ho, d.wo};
  direct_run(y, x, w, q, d, d.ci * d.h * d.w, d.co * d.hwo(), d.live0, d.live1);
  for (int64_t n = 0; n < d.n; ++n) zero_dead_rows(y + n * d.co * d.hwo(), d);
}

void direct_backward_data(float* dx, const float* dy, const float* w, const Dims& d, const ConvGeometry& g) {
  direct_backwards.fetch_add(1, std::memory_order_relaxed);
  const int64_t k = d.kh, taps = k * k, pad = g.dilation * (k - 1) - g.pad;
  // wt[c][co][i][j] = w[co][c][k − 1 − i][k − 1 − j]
  std::vector<float> wt(size_t(d.ci * d.co * taps));
  for (int64_t c = 0; c < d.ci; ++c)
    for (int64_t co = 0; co < d.co; ++co)
      for (int64_t t = 0; t < taps; ++t)
        wt[size_t((c * d.co + co) * taps + t)] = w[(co * d.ci + c) * taps + taps - 1 - t];
  const DirectGeometry q{d.co, d.ho, d.wo, d.ho + 2 * pad, d.wo + 2 * pad, d.ci, k, k, pad, g.dilation, d.h, d.w};
  direct_run(dx, dy, wt.data(), q, d, d.co * d.hwo(), d.ci * d.h * d.w, 0, d.h);
}

template <class T>
void forward(const Tensor& y, const Tensor& x, const Tensor& w, const ConvGeometry& g) {
  const Dims d = dims_of(x, w, g);
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  const T* wp = w.data<T>();
  if constexpr (std::is_same_v<T, float>) {
    if (direct_forward_applies(d, g)) return direct_forward(yp, xp, wp, d, g);
  }
  const bool pointwise = is_pointwise(d, g);
  const Im2colSource<T> src(xp, d, g);
  const std::vector<std::pair<int64_t, int64_t>> row_bands = output_bands(d, g, sizeof(T));
  const int team = sample_team(d, row_bands.size());
  if (team > 1) {
    const int64_t per_thread = pointwise ? 0 : d.ckk() * d.live_cols();
    Workspace<T> cols(per_thread * team);
#pragma omp parallel for schedule(static) num_threads(team)
    for (int64_t n = 0; n < d.n; ++n) {
      zero_dead_rows(yp + n * d.co * d.hwo(), d);
      forward_band(cols.empty() ? nullptr : cols.data() + omp_get_thread_num() * per_thread, src.sample(n),
                   src.phases(), yp + n * d.co * d.hwo(), wp, d, g, pointwise, d.live0, d.live1);
    }
    return;
  }
  int64_t widest = 0;
  for (const auto& [lo, hi] : row_bands) widest = std::max(widest, hi - lo);
  Workspace<T> col(pointwise ? 0 : d.ckk() * widest * d.wo);
  for (int64_t n = 0; n < d.n; ++n) {
    zero_dead_rows(yp + n * d.co * d.hwo(), d);
    for (const auto& [oh0, oh1] : row_bands)
      forward_band(col.data(), src.sample(n), src.phases(), yp + n * d.co * d.hwo(), wp, d, g, pointwise, oh0, oh1);
  }
}

// dx_n for output rows [oh0, oh1): col = Wᵀ · dy_n[:, band], scattered into dx_n (zeroed by
// the caller before the first band).
template <class T>
void backward_data_band(T* col, T* dxn, const T* dyn, const T* w, const Dims& d, const ConvGeometry& g,
                        bool pointwise, int64_t oh0, int64_t oh1) {
  if (oh1 <= oh0) return;
  kern::GemmArgs a = gemm_args(dtype_of<T>);
  a.trans_a = true;
  a.m = d.ckk(), a.n = (oh1 - oh0) * d.wo, a.k = d.co;
  a.a = w, a.lda = d.ckk();
  a.b = dyn + oh0 * d.wo, a.ldb = d.hwo();
  a.c = pointwise ? dxn + oh0 * d.wo : col, a.ldc = pointwise ? d.hwo() : (oh1 - oh0) * d.wo;
  kern::cpu::gemm(a);
  if (!pointwise) col2im(dxn, col, d, g, oh0, oh1);
}

template <class T>
void backward_data(const Tensor& dx, const Tensor& dy, const Tensor& w, const ConvGeometry& g) {
  const Dims d = dims_of(dx, w, g);
  const bool pointwise = is_pointwise(d, g);
  T* dxp = dx.data<T>();
  const T* dyp = dy.data<T>();
  const T* wp = w.data<T>();
  if constexpr (std::is_same_v<T, float>) {
    if (direct_backward_applies(d, g)) return direct_backward_data(dxp, dyp, wp, d, g);
  }
  const std::vector<std::pair<int64_t, int64_t>> row_bands = output_bands(d, g, sizeof(T));
  const int64_t image = d.ci * d.h * d.w;
  const int team = sample_team(d, row_bands.size());
  if (team > 1) {
    const int64_t per_thread = pointwise ? 0 : d.ckk() * d.live_cols();
    Workspace<T> cols(per_thread * team);
#pragma omp parallel for schedule(static) num_threads(team)
    for (int64_t n = 0; n < d.n; ++n) {
      T* dxn = dxp + n * image;
      if (!pointwise) std::fill(dxn, dxn + image, T(0));
      backward_data_band(cols.empty() ? nullptr : cols.data() + omp_get_thread_num() * per_thread, dxn,
                         dyp + n * d.co * d.hwo(), wp, d, g, pointwise, d.live0, d.live1);
    }
    return;
  }
  int64_t widest = 0;
  for (const auto& [lo, hi] : row_bands) widest = std::max(widest, hi - lo);
  Workspace<T> col(pointwise ? 0 : d.ckk() * widest * d.wo);
  for (int64_t n = 0; n < d.n; ++n) {
    T* dxn = dxp + n * image;
    if (!pointwise) std::fill(dxn, dxn + image, T(0));
    // Last band first: see col2im.
    for (auto band = row_bands.rbegin(); band != row_bands.rend(); ++band)
      backward_data_band(col.data(), dxn, dyp + n * d.co * d.hwo(), wp, d, g, pointwise, band->first, band->second);
  }
}

std::atomic<int64_t> owned_filter_blocks{0};

// dW[:, r0:r1] (+)= dy_n · rows [r0, r1) of col_nᵀ over the live output rows (`rows` points
// at row r0, d.live_cols() long; for a pointwise convolution they are the image's channels),
// β = 0 for the first sample; `whole` for a block that is already one of gemm_blocks' cuts (one
// OpenBLAS call).
template <class T>
void filter_gemm(T* dw, const T* dyn, const T* rows, const Dims& d, int64_t r0, int64_t r1, bool first,
                 bool whole) {
  kern::GemmArgs a = gemm_args(dtype_of<T>);
  a.whole = whole;
  a.trans_b = true;
  a.m = d.co, a.n = r1 - r0, a.k = d.live_cols();
  a.a = dyn + d.live0 * d.wo, a.lda = d.hwo();
  a.b = rows, a.ldb = d.live_cols();
  a.c = dw + r0, a.ldc = d.ckk();
  a.beta = first ? 0.0 : 1.0;
  kern::cpu::gemm(a);
}

// dW = Σ_n dy_n · col_nᵀ, summed sample after sample (each sample's GEMM adds to dW with
// β = 1). dW's columns, which are rows of col, are cut into blocks and each thread owns some:
// it writes those rows of every sample's col itself and runs its block's GEMM on them, so no
// thread waits for another between im2col and GEMM or between samples (small-fcn's conv1_1
// spent 40 % of its backward in those waits). The blocks follow from the shape, so one thread
// runs the same blocks in turn, with the same bits.
template <class T>
void backward_filter(const Tensor& dw, const Tensor& dy, const Tensor& x, const ConvGeometry& g) {
  const Dims d = dims_of(x, dw, g);
  const bool pointwise = is_pointwise(d, g);
  const T* xp = x.data<T>();
  const T* dyp = dy.data<T>();
  if (d.n == 0 || d.live_cols() == 0) {  // no terms: no samples, or every output row sees only padding
    std::fill(dw.data<T>(), dw.data<T>() + dw.numel(), T(0));
    return;
  }
  const Im2colSource<T> src(xp, d, g);
  Workspace<T> col(pointwise ? 0 : d.ckk() * d.live_cols());
  // dW's columns cut by kern::cpu::gemm's rule, from the shape alone.
  const double work = double(d.co) * double(d.ckk()) * double(d.live_cols());
  const auto blocks =
      pointwise ? std::vector<std::pair<int64_t, int64_t>>{} : kern::cpu::gemm_blocks(d.ckk(), work);
  if (blocks.size() > 1) {
    owned_filter_blocks.fetch_add(1, std::memory_order_relaxed);
    const int team = omp_in_parallel() ? 1 : std::min(omp_get_max_threads(), int(blocks.size()));
    // Blocks dealt round the team, in case OpenMP grants fewer threads than asked for.
#pragma omp parallel num_threads(team)
    for (size_t block = size_t(omp_get_thread_num()); block < blocks.size(); block += size_t(omp_get_num_threads())) {
      const auto [r0, r1] = blocks[block];
      for (int64_t n = 0; n < d.n && r0 < r1; ++n) {
        for (int64_t r = r0; r < r1; ++r)
          im2col_row(col.data(), src.sample(n), src.phases(), d, g, d.live0, d.live1, r);
        filter_gemm(dw.data<T>(), dyp + n * d.co * d.hwo(), col.data() + r0 * d.live_cols(), d, r0, r1, n == 0, true);
      }
    }
    return;
  }
  for (int64_t n = 0; n < d.n; ++n) {
    if (!pointwise) im2col(col.data(), src.sample(n), src.phases(), d, g, d.live0, d.live1);
    filter_gemm(dw.data<T>(), dyp + n * d.co * d.hwo(), pointwise ? src.sample(n) : col.data(), d, 0, d.ckk(), n == 0,
                false);
  }
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

// bf16 operands (the mixed-precision path): widened to f32, which is exact, so the f32
// kernel computes every product a·b exactly (8-bit × 8-bit significands fit in f32's 24)
// and accumulates in f32 — what tensor cores do, up to the order of the sums; the result is
// then rounded once to bf16, as cuDNN writes a bf16 output (PSEUDO_BFLOAT16 configuration).
template <class Primitive>
void through_f32(const Tensor& out, const Tensor& a, const Tensor& b, Primitive primitive) {
  Tensor out32 = Tensor::empty(out.shape(), DType::f32);
  primitive(out32, a.to(DType::f32), b.to(DType::f32));
  Tensor(out).copy_(out32);  // rounds to nearest even
}

}  // namespace

int64_t owned_filter_block_count() { return owned_filter_blocks.load(std::memory_order_relaxed); }
int64_t direct_forward_count() { return direct_forwards.load(std::memory_order_relaxed); }
int64_t direct_backward_count() { return direct_backwards.load(std::memory_order_relaxed); }

void conv_forward_cpu(const Tensor& y, const Tensor& x, const Tensor& w, const ConvGeometry& g) {
  if (x.dtype() == DType::bf16)
    return through_f32(y, x, w, [&](const Tensor& o, const Tensor& a, const Tensor& b) { conv_forward_cpu(o, a, b, g); });
  CBST_DISPATCH_FLOAT_TYPES(x.dtype(), "conv2d", [&] { forward<scalar_t>(y, x, w, g); });
}

void conv_backward_data_cpu(const Tensor& dx, const Tensor& dy, const Tensor& w,
                            const ConvGeometry& g) {
  if (dy.dtype() == DType::bf16)
    return through_f32(dx, dy, w, [&](const Tensor& o, const Tensor& a, const Tensor& b) {
      conv_backward_data_cpu(o, a, b, g);
    });
  CBST_DISPATCH_FLOAT_TYPES(dy.dtype(), "conv2d backward", [&] { backward_data<scalar_t>(dx, dy, w, g); });
}

void conv_backward_filter_cpu(const Tensor& dw, const Tensor& dy, const Tensor& x,
                              const ConvGeometry& g) {
  if (dy.dtype() == DType::bf16)
    return through_f32(dw, dy, x, [&](const Tensor& o, const Tensor& a, const Tensor& b) {
      conv_backward_filter_cpu(o, a, b, g);
    });
  CBST_DISPATCH_FLOAT_TYPES(dy.dtype(), "conv2d backward", [&] { backward_filter<scalar_t>(dw, dy, x, g); });
}

void add_channel_bias_cpu(const Tensor& y, const Tensor& b) {
  CBST_DISPATCH_FLOAT_TYPES(y.dtype(), "conv bias", [&] { add_bias<scalar_t>(y, b); });
}

void channel_sum_cpu(const Tensor& db, const Tensor& dy) {
  CBST_DISPATCH_FLOAT_TYPES(dy.dtype(), "conv bias backward", [&] { channel_sum<scalar_t>(db, dy); });
}

}  // namespace cbst::conv_detail
