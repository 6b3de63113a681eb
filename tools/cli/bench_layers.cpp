// `cbst bench layers`: forward and backward time of single layers at the shapes FCN8s-VGG16
// and ResNet-38 (batch 1, 128×128), small-fcn and the demo's small-deeplabv3plus (batch 4, 96×96)
// run on the CPU.
// tools/bench/layers_torch.py reads this program's JSON and times the same cases in PyTorch
// (tools/bench/compare_cpu.sh runs both), so the table of cases below is the only one.
//
// Each case builds its inputs (requires_grad), runs the op once (checked: finite, and for
// convolutions 32 sampled outputs against a direct f64 sum), then times
//   fwd ms   the op's forward, median of the repeats;
//   bwd ms   backward through the recorded graph with retain_graph (gradients accumulate
//            into the leaves each time, as torch's y.backward(g, retain_graph=True) does).
// Convolution rows also print the fraction of OpenBLAS's SGEMM rate: the time the three
// im2col-formulation GEMMs of that shape take when called alone, over the layer's time
//   fwd   Co × HoWo × Ci·k²                   (per image)
//   bwd   Ci·k² × HoWo × Co (Wᵀ·dy)  +  Co × Ci·k² × HoWo (dy·colᵀ)
// so 1.0 means the convolution costs no more than its GEMMs. This machine's speed drifts
// from second to second (one layer's median moved by 1.5× between runs), so the GEMMs and the
// layer are timed in alternating pairs and the fraction is the median of the pairs' ratios:
// both sides of each ratio ran under the same load.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/atomic_file.h"
#include "engine/autograd.h"
#include "engine/blas_core.h"
#include "engine/json.h"
#include "engine/kernels.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "layers/batch_norm2d.h"
#include "layers/conv2d.h"
#include "layers/conv_transpose2d.h"
#include "layers/max_pool2d.h"
#include "layers/softmax_cross_entropy.h"
#include "layers/upsample.h"
#include "tools/cli/bench_timing.h"
#include "tools/cli/registry.h"
#include "tools/cli/validators.h"

namespace cbst {
namespace {

// One layer at one shape. `op`: conv, deconv (conv_transpose2d), maxpool, bn_train (batch
// statistics), bn_frozen (running statistics, gradients to x, γ, β), upsample (bilinear,
// align_corners false, to out_h×out_w), softmax_ce (c classes, labels with ~10% 255).
struct LayerCase {
  const char* name;
  const char* op;
  int64_t n, c, h, w;           // input
  int64_t co = 0, k = 0, stride = 1, pad = 0, dilation = 1;
  bool bias = false;
  bool ceil_mode = false;
  int64_t out_h = 0, out_w = 0;  // upsample
};

const std::vector<LayerCase>& cases() {
  static const std::vector<LayerCase> table = {
      // FCN8s-VGG16 at 128 (conv1_1 pads by 100, so the first stage runs at 326).
      {.name = "fcn conv1_1", .op = "conv", .n = 1, .c = 3, .h = 128, .w = 128, .co = 64, .k = 3, .pad = 100, .bias = true},
      {.name = "fcn conv1_2", .op = "conv", .n = 1, .c = 64, .h = 326, .w = 326, .co = 64, .k = 3, .pad = 1, .bias = true},
      {.name = "fcn conv2_2", .op = "conv", .n = 1, .c = 128, .h = 163, .w = 163, .co = 128, .k = 3, .pad = 1, .bias = true},
      {.name = "fcn conv3_2", .op = "conv", .n = 1, .c = 256, .h = 82, .w = 82, .co = 256, .k = 3, .pad = 1, .bias = true},
      {.name = "fcn conv4_2", .op = "conv", .n = 1, .c = 512, .h = 41, .w = 41, .co = 512, .k = 3, .pad = 1, .bias = true},
      {.name = "fcn conv5_2", .op = "conv", .n = 1, .c = 512, .h = 21, .w = 21, .co = 512, .k = 3, .pad = 1, .bias = true},
      {.name = "fcn fc6 7x7", .op = "conv", .n = 1, .c = 512, .h = 11, .w = 11, .co = 4096, .k = 7, .bias = true},
      {.name = "fcn fc7 1x1", .op = "conv", .n = 1, .c = 4096, .h = 5, .w = 5, .co = 4096, .k = 1, .bias = true},
      {.name = "fcn pool1", .op = "maxpool", .n = 1, .c = 64, .h = 326, .w = 326, .k = 2, .stride = 2, .ceil_mode = true},
      {.name = "fcn upscore8", .op = "deconv", .n = 1, .c = 19, .h = 20, .w = 20, .co = 19, .k = 16, .stride = 8},
      {.name = "fcn softmax-ce", .op = "softmax_ce", .n = 1, .c = 19, .h = 128, .w = 128},
      // ResNet-38 at 128, output stride 8.
      {.name = "r38 conv1a", .op = "conv", .n = 1, .c = 3, .h = 128, .w = 128, .co = 64, .k = 3, .pad = 1},
      {.name = "r38 b2 3x3", .op = "conv", .n = 1, .c = 128, .h = 64, .w = 64, .co = 128, .k = 3, .pad = 1},
      {.name = "r38 b4 3x3", .op = "conv", .n = 1, .c = 512, .h = 16, .w = 16, .co = 512, .k = 3, .pad = 1},
      {.name = "r38 b5 dil2", .op = "conv", .n = 1, .c = 512, .h = 16, .w = 16, .co = 1024, .k = 3, .pad = 2, .dilation = 2},
      {.name = "r38 b7 1x1", .op = "conv", .n = 1, .c = 1024, .h = 16, .w = 16, .co = 4096, .k = 1},
      {.name = "r38 b7 dil4", .op = "conv", .n = 1, .c = 1024, .h = 16, .w = 16, .co = 2048, .k = 3, .pad = 4, .dilation = 4},
      {.name = "r38 conv6a", .op = "conv", .n = 1, .c = 4096, .h = 16, .w = 16, .co = 512, .k = 3, .pad = 12, .dilation = 12, .bias = true},
      {.name = "r38 bn frozen", .op = "bn_frozen", .n = 1, .c = 1024, .h = 16, .w = 16},
      {.name = "r38 upsample", .op = "upsample", .n = 1, .c = 19, .h = 16, .w = 16, .out_h = 128, .out_w = 128},
      // small-fcn (width 16) at the demo's batch 4 of 96×96 crops.
      {.name = "sfcn conv1_1", .op = "conv", .n = 4, .c = 3, .h = 96, .w = 96, .co = 16, .k = 3, .pad = 1},
      {.name = "sfcn conv1_2", .op = "conv", .n = 4, .c = 16, .h = 96, .w = 96, .co = 16, .k = 3, .pad = 1},
      {.name = "sfcn conv2_2", .op = "conv", .n = 4, .c = 32, .h = 48, .w = 48, .co = 32, .k = 3, .pad = 1},
      {.name = "sfcn conv3_2", .op = "conv", .n = 4, .c = 64, .h = 24, .w = 24, .co = 64, .k = 3, .pad = 4, .dilation = 4},
      {.name = "sfcn bn train", .op = "bn_train", .n = 4, .c = 16, .h = 96, .w = 96},
      {.name = "sfcn pool1", .op = "maxpool", .n = 4, .c = 16, .h = 96, .w = 96, .k = 2, .stride = 2, .ceil_mode = true},
      {.name = "sfcn upsample", .op = "upsample", .n = 4, .c = 19, .h = 24, .w = 24, .out_h = 96, .out_w = 96},
      {.name = "sfcn softmax-ce", .op = "softmax_ce", .n = 4, .c = 19, .h = 96, .w = 96},
      // small-deeplabv3plus (the demo's model) at the same batch 4 of 96×96 crops.
      {.name = "sdl stem1 s2", .op = "conv", .n = 4, .c = 3, .h = 96, .w = 96, .co = 24, .k = 3, .stride = 2, .pad = 1},
      {.name = "sdl stem2", .op = "conv", .n = 4, .c = 24, .h = 48, .w = 48, .co = 32, .k = 3, .pad = 1},
      {.name = "sdl layer1", .op = "conv", .n = 4, .c = 32, .h = 24, .w = 24, .co = 32, .k = 3, .pad = 1},
      {.name = "sdl layer2 s2", .op = "conv", .n = 4, .c = 32, .h = 24, .w = 24, .co = 64, .k = 3, .stride = 2, .pad = 1},
      {.name = "sdl layer3 dil2", .op = "conv", .n = 4, .c = 96, .h = 12, .w = 12, .co = 96, .k = 3, .pad = 2, .dilation = 2},
      {.name = "sdl aspp dil9", .op = "conv", .n = 4, .c = 96, .h = 12, .w = 12, .co = 64, .k = 3, .pad = 9, .dilation = 9},
      {.name = "sdl project 1x1", .op = "conv", .n = 4, .c = 320, .h = 12, .w = 12, .co = 64, .k = 1},
      {.name = "sdl decoder1", .op = "conv", .n = 4, .c = 80, .h = 24, .w = 24, .co = 64, .k = 3, .pad = 1},
      {.name = "sdl decoder2", .op = "conv", .n = 4, .c = 88, .h = 48, .w = 48, .co = 32, .k = 3, .pad = 1},
      {.name = "sdl classifier", .op = "conv", .n = 4, .c = 32, .h = 48, .w = 48, .co = 19, .k = 1, .bias = true},
      {.name = "sdl bn train", .op = "bn_train", .n = 4, .c = 32, .h = 48, .w = 48},
      {.name = "sdl pool 3x3", .op = "maxpool", .n = 4, .c = 32, .h = 48, .w = 48, .k = 3, .stride = 2, .pad = 1},
      {.name = "sdl upsample", .op = "upsample", .n = 4, .c = 19, .h = 48, .w = 48, .out_h = 96, .out_w = 96},
  };
  return table;
}

struct LayerRow {
  const LayerCase* lc;
  double fwd_ms = 0, bwd_ms = 0, gemm_fwd_ms = 0, gemm_bwd_ms = 0;
  double fwd_frac = 0, bwd_frac = 0;  // medians of the paired ratios (convolutions)
  double flops = 0;  // forward FLOPs (convolutions)
};

using cli::median;
using cli::now_s;

// Median of `repeats` runs; the first (untimed) run warms caches and the allocator.
double median_ms(int repeats, const std::function<void()>& f) {
  f();
  return cli::median_ms(repeats, f, [] {});
}

// Largest relative error (over Σ|terms|) of 32 sampled conv outputs against the definition.
double conv_sampled_error(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, const LayerCase& c) {
  const float* yp = y.data<float>();
  const float* bp = b.defined() ? b.data<float>() : nullptr;
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  const int64_t co = y.size(1), ho = y.size(2), wo = y.size(3);
  Generator gen(3);
  double worst = 0;
  for (int s = 0; s < 32; ++s) {
    const int64_t n = int64_t(gen.next_below(uint64_t(c.n))), o = int64_t(gen.next_below(uint64_t(co)));
    const int64_t oh = int64_t(gen.next_below(uint64_t(ho))), ow = int64_t(gen.next_below(uint64_t(wo)));
    double sum = bp ? bp[o] : 0.0, mag = std::abs(sum);
    for (int64_t ci = 0; ci < c.c; ++ci)
      for (int64_t i = 0; i < c.k; ++i)
        for (int64_t j = 0; j < c.k; ++j) {
          const int64_t ih = oh * c.stride - c.pad + i * c.dilation, iw = ow * c.stride - c.pad + j * c.dilation;
          if (ih < 0 || ih >= c.h || iw < 0 || iw >= c.w) continue;
          const double t = double(xp[((n * c.c + ci) * c.h + ih) * c.w + iw]) * wp[((o * c.c + ci) * c.k + i) * c.k + j];
          sum += t, mag += std::abs(t);
        }
    const double got = yp[((n * co + o) * ho + oh) * wo + ow];
    worst = std::max(worst, std::abs(got - sum) / std::max(mag, 1e-30));
  }
  return worst;
}

// Medians of `repeats` alternating runs of `layer` and `gemms`, and the median of the pairs'
// ratios gemms / layer; one untimed run of each first.
struct Paired {
  double layer_ms, gemm_ms, fraction;
};

Paired paired_medians(int repeats, const std::function<void()>& layer, const std::function<void()>& gemms) {
  layer();
  gemms();
  std::vector<double> tl, tg, ratio;
  for (int i = 0; i < repeats; ++i) {
    double t0 = now_s();
    layer();
    tl.push_back((now_s() - t0) * 1e3);
    t0 = now_s();
    gemms();
    tg.push_back((now_s() - t0) * 1e3);
    ratio.push_back(tg.back() / tl.back());
  }
  return {median(tl), median(tg), median(ratio)};
}

// The three GEMMs of the im2col formulation, alone, on buffers of the right sizes, each timed
// in pairs with the layer's pass (`layer_fwd`, `layer_bwd`).
void time_conv_with_gemms(LayerRow& r, int repeats, const std::function<void()>& layer_fwd,
                          const std::function<void()>& layer_bwd) {
  const LayerCase& c = *r.lc;
  const int64_t ho = (c.h + 2 * c.pad - c.dilation * (c.k - 1) - 1) / c.stride + 1;
  const int64_t wo = (c.w + 2 * c.pad - c.dilation * (c.k - 1) - 1) / c.stride + 1;
  const int64_t ckk = c.c * c.k * c.k, hw = ho * wo;
  std::vector<float> wbuf(size_t(c.co * ckk), 0.01f), col(size_t(ckk * hw), 0.01f), out(size_t(c.co * hw), 0.01f);
  auto gemm = [&](bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float* cc, int64_t ldc) {
    kern::GemmArgs g;
    g.trans_a = ta, g.trans_b = tb, g.m = m, g.n = n, g.k = k;
    g.a = a, g.lda = lda, g.b = b, g.ldb = ldb, g.c = cc, g.ldc = ldc;
    kern::cpu::gemm(g);
  };
  Paired fwd = paired_medians(repeats, layer_fwd, [&] {
    for (int64_t i = 0; i < c.n; ++i) gemm(false, false, c.co, hw, ckk, wbuf.data(), ckk, col.data(), hw, out.data(), hw);
  });
  std::vector<float> dw(size_t(c.co * ckk));
  Paired bwd = paired_medians(repeats, layer_bwd, [&] {
    for (int64_t i = 0; i < c.n; ++i) {
      gemm(true, false, ckk, hw, c.co, wbuf.data(), ckk, out.data(), hw, col.data(), hw);
      gemm(false, true, c.co, ckk, hw, out.data(), hw, col.data(), hw, dw.data(), ckk);
    }
  });
  r.fwd_ms = fwd.layer_ms, r.gemm_fwd_ms = fwd.gemm_ms, r.fwd_frac = fwd.fraction;
  r.bwd_ms = bwd.layer_ms, r.gemm_bwd_ms = bwd.gemm_ms, r.bwd_frac = bwd.fraction;
}

LayerRow bench_case(const LayerCase& c, int repeats) {
  Generator gen(11);
  LayerRow r{.lc = &c};
  const std::string op = c.op;
  Tensor x = rand_uniform({c.n, c.c, c.h, c.w}, -1, 1, DType::f32, Device::cpu(), &gen);
  x.set_requires_grad(true);
  std::vector<Tensor> params;
  std::function<Tensor()> forward;
  if (op == "conv" || op == "deconv") {
    const bool conv = op == "conv";
    const double scale = 1.0 / std::sqrt(double(c.c * c.k * c.k));
    Tensor w = conv ? rand_uniform({c.co, c.c, c.k, c.k}, -scale, scale, DType::f32, Device::cpu(), &gen)
                    : rand_uniform({c.c, c.co, c.k, c.k}, -scale, scale, DType::f32, Device::cpu(), &gen);
    Tensor b = c.bias ? rand_uniform({c.co}, -0.1, 0.1, DType::f32, Device::cpu(), &gen) : Tensor();
    w.set_requires_grad(true);
    if (b.defined()) b.set_requires_grad(true);
    params = {w, b};
    if (conv)
      forward = [=] { return conv2d(x, w, b, {.stride = c.stride, .pad = c.pad, .dilation = c.dilation}); };
    else
      forward = [=] { return conv_transpose2d(x, w, b, {.stride = c.stride, .pad = c.pad, .dilation = c.dilation}); };
  } else if (op == "maxpool") {
    forward = [=] { return max_pool2d(x, {.kernel = c.k, .stride = c.stride, .pad = c.pad, .ceil_mode = c.ceil_mode}); };
  } else if (op == "bn_train" || op == "bn_frozen") {
    Tensor gamma = rand_uniform({c.c}, 0.5, 1.5, DType::f32, Device::cpu(), &gen);
    Tensor beta = rand_uniform({c.c}, -0.5, 0.5, DType::f32, Device::cpu(), &gen);
    Tensor rm = rand_uniform({c.c}, -0.5, 0.5, DType::f32, Device::cpu(), &gen);
    Tensor rv = rand_uniform({c.c}, 0.5, 1.5, DType::f32, Device::cpu(), &gen);
    gamma.set_requires_grad(true);
    beta.set_requires_grad(true);
    const bool training = op == "bn_train";
    forward = [=] { return batch_norm2d(x, rm, rv, gamma, beta, {.training = training, .eps = 1e-5}); };
  } else if (op == "upsample") {
    forward = [=] { return upsample_bilinear(x, {.height = c.out_h, .width = c.out_w, .align_corners = false}); };
  } else if (op == "softmax_ce") {
    std::vector<uint8_t> v(size_t(c.n * c.h * c.w));
    for (uint8_t& l : v) l = gen.next_below(10) == 0 ? 255 : uint8_t(gen.next_below(uint64_t(c.c)));
    const Tensor labels = Tensor::from_vector<uint8_t>(v, {c.n, c.h, c.w});
    forward = [=] { return softmax_cross_entropy(x, labels); };
  } else {
    CBST_THROW("bench layers: unknown op '", op, "' in case ", c.name);
  }

  const Tensor y = forward();
  CBST_CHECK(std::isfinite(sum(y).item<float>()), "bench layers: ", c.name, " output is not finite");
  if (op == "conv") {
    const double err = conv_sampled_error(y, x, params[0], params[1], c);
    // f32 sums of up to 37k terms: a relative error above 1e-4 of Σ|terms| means a wrong index.
    CBST_CHECK(err < 1e-4, "bench layers: ", c.name, " output differs from the direct sum (", err, ")");
    r.flops = 2.0 * double(y.numel()) * double(c.c * c.k * c.k);
  }
  // Forward only: no graph bookkeeping in the timing.
  const std::function<void()> layer_fwd = [&] {
    NoGradGuard no_grad;
    forward();
  };
  const Tensor gy = Tensor::ones(y.shape(), DType::f32, Device::cpu());
  const std::function<void()> layer_bwd = [&] { y.backward(gy, /*retain_graph=*/true); };
  if (op == "conv") {
    time_conv_with_gemms(r, repeats, layer_fwd, layer_bwd);
    return r;
  }
  r.fwd_ms = median_ms(repeats, layer_fwd);
  r.bwd_ms = median_ms(repeats, layer_bwd);
  return r;
}

struct LayersOptions {
  int repeats = 5;
  std::string filter;  // substring of the case name
  std::string json;
};

void run(const LayersOptions& o) {
  std::vector<LayerRow> rows;
  for (const LayerCase& c : cases())
    if (o.filter.empty() || std::string(c.name).find(o.filter) != std::string::npos)
      rows.push_back(bench_case(c, o.repeats));
  std::printf("layers f32 on the cpu, %d threads, median of %d (%s); sgemm frac = median over "
              "alternating pairs of (OpenBLAS time of the im2col GEMMs alone / layer time)\n", omp_get_max_threads(),
              o.repeats, kern::cpu_gemm_description().c_str());
  std::printf("%-16s %-10s %-22s %9s %9s %8s %8s %7s %7s\n", "case", "op", "input (N,C,H,W)", "fwd ms",
              "bwd ms", "fwd GF/s", "bwd GF/s", "fwd frac", "bwd frac");
  for (const LayerRow& r : rows) {
    const LayerCase& c = *r.lc;
    char shape[64];
    std::snprintf(shape, sizeof shape, "%lld,%lld,%lld,%lld", (long long)c.n, (long long)c.c, (long long)c.h,
                  (long long)c.w);
    if (r.flops > 0)
      std::printf("%-16s %-10s %-22s %9.2f %9.2f %8.1f %8.1f %7.2f %7.2f\n", c.name, c.op, shape, r.fwd_ms,
                  r.bwd_ms, r.flops / r.fwd_ms * 1e-6, 2 * r.flops / r.bwd_ms * 1e-6, r.fwd_frac, r.bwd_frac);
    else
      std::printf("%-16s %-10s %-22s %9.2f %9.2f %8s %8s %7s %7s\n", c.name, c.op, shape, r.fwd_ms, r.bwd_ms, "-",
                  "-", "-", "-");
  }
  if (o.json.empty()) return;
  Json js = {{"benchmark", "layers"}, {"implementation", "cbst"}, {"threads", omp_get_max_threads()},
             {"cpu_gemm", kern::cpu_gemm_description()},
             {"repeats", o.repeats}, {"rows", Json::array()}};
  for (const LayerRow& r : rows) {
    const LayerCase& c = *r.lc;
    js["rows"].push_back({{"case", c.name}, {"op", c.op}, {"n", c.n}, {"c", c.c}, {"h", c.h}, {"w", c.w}, {"co", c.co},
                          {"k", c.k}, {"stride", c.stride}, {"pad", c.pad}, {"dilation", c.dilation}, {"bias", c.bias},
                          {"ceil_mode", c.ceil_mode}, {"out_h", c.out_h}, {"out_w", c.out_w}, {"fwd_ms", r.fwd_ms},
                          {"bwd_ms", r.bwd_ms}, {"fwd_flops", r.flops}, {"sgemm_fwd_ms", r.gemm_fwd_ms},
                          {"sgemm_bwd_ms", r.gemm_bwd_ms},
                          {"sgemm_fwd_frac", r.fwd_frac}, {"sgemm_bwd_frac", r.bwd_frac}});
  }
  write_text_atomic(o.json, json_text(js, 2) + "\n");
}

cli::Command reg({.parent = "bench", .name = "layers",
                  .help = "CPU forward/backward ms of single layers at the shapes the models use"},
                 [](CLI::App& cmd) {
                   auto o = std::make_shared<LayersOptions>();
                   cmd.add_option("--repeats", o->repeats, "timed repetitions (median)")
                       ->check(cbst::cli::InRange(1, 1000))->capture_default_str();
                   cmd.add_option("--filter", o->filter, "only cases whose name contains this");
                   cmd.add_option("--json", o->json, "also write the table (with each case's shape) as JSON here");
                   cmd.callback([o] { run(*o); });
                 });

}  // namespace
}  // namespace cbst
