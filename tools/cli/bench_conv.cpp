// `cbst bench conv`: conv2d forward and backward throughput on the convolution shapes that
// dominate FCN8s-VGG16 and ResNet-38 training (DESIGN §4, §9).
//
// Cases at input size S (default 500 on cuda, 128 on cpu), batch --batch:
//   vgg conv1_2   64→64    3×3        at S      (FCN pads conv1_1 by 100, so ~S+198 there)
//   vgg conv3_3   256→256  3×3        at S/4
//   vgg conv5_3   512→512  3×3        at S/16
//   r38 b6 dil4   1024→1024 3×3 dil 4 at S/8    (ResNet-38 level 6, output stride 8: 63 at 500)
// Columns:
//   fwd ms / bwd ms   median of --repeats after warm-up (device synchronised); bwd runs the
//                     recorded backward (dx, dw, db, plus the autograd accumulation pass);
//   TFLOP/s           2·N·Co·Ho·Wo·Ci·k² per forward, twice that per backward (dx and dw);
//   % tf32 peak       (cuda) over the dense TF32 rate measured in the same run with an
//                     8192³ cuBLAS GEMM through matmul() with TF32 on.
// Before timing, 64 sampled output elements are checked against a direct f64 sum.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/atomic_file.h"
#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "engine/json.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "layers/conv2d.h"
#include "tools/cli/bench_timing.h"
#include "tools/cli/registry.h"
#include "tools/cli/validators.h"

namespace cbst {
namespace {

struct ConvBenchOptions {
  std::string device = "cpu";  // CPU unless --device cuda, as every subcommand
  int64_t size = 0;    // 0: 500 on cuda, 128 on cpu
  int64_t batch = 1;
  int repeats = 5;
  std::string json;
};

struct ConvShape {
  std::string name;
  int64_t ci, co, k, dilation, divisor;
};

struct ConvRow {
  std::string name;
  int64_t n, ci, co, hw, dilation;
  double fwd_ms = 0, bwd_ms = 0, fwd_tflops = 0, bwd_tflops = 0, max_rel_err = 0;
};

// Largest relative error of 64 sampled outputs against the definition, in f64.
double sampled_error(const Tensor& y, const Tensor& x, const Tensor& w, int64_t dil) {
  const Tensor yc = y.to(Device::cpu()), xc = x.to(Device::cpu()), wc = w.to(Device::cpu());
  const float* yp = yc.data<float>();
  const float* xp = xc.data<float>();
  const float* wp = wc.data<float>();
  const int64_t n = x.size(0), ci = x.size(1), h = x.size(2), wd = x.size(3), co = w.size(0);
  const int64_t k = w.size(2), pad = dil * (k / 2);
  Generator gen(3);
  double worst = 0;
  for (int s = 0; s < 64; ++s) {
    const int64_t b = int64_t(gen.next_below(uint64_t(n))), o = int64_t(gen.next_below(uint64_t(co)));
    const int64_t i = int64_t(gen.next_below(uint64_t(h))), j = int64_t(gen.next_below(uint64_t(wd)));
    double acc = 0, mag = 0;
    for (int64_t c = 0; c < ci; ++c)
      for (int64_t p = 0; p < k; ++p)
        for (int64_t q = 0; q < k; ++q) {
          const int64_t r = i - pad + p * dil, t = j - pad + q * dil;
          if (r < 0 || r >= h || t < 0 || t >= wd) continue;
          const double v = double(wp[((o * ci + c) * k + p) * k + q]) * xp[((b * ci + c) * h + r) * wd + t];
          acc += v;
          mag += std::abs(v);
        }
    const double got = yp[((b * co + o) * h + i) * wd + j];
    worst = std::max(worst, std::abs(got - acc) / std::max(mag, 1e-30));
  }
  return worst;
}

ConvRow bench_shape(const ConvShape& s, const ConvBenchOptions& o, Device d) {
  const int64_t hw = std::max<int64_t>(1, (o.size + s.divisor - 1) / s.divisor);
  Generator gen(1);
  // Kaiming-scaled weights keep activations O(1), as in a trained network.
  const double wscale = std::sqrt(6.0 / double(s.ci * s.k * s.k));
  Tensor x = rand_uniform({o.batch, s.ci, hw, hw}, -1, 1, DType::f32, Device::cpu(), &gen).to(d);
  Tensor w = rand_uniform({s.co, s.ci, s.k, s.k}, -wscale, wscale, DType::f32, Device::cpu(), &gen).to(d);
  Tensor b = Tensor::zeros({s.co}, DType::f32, d);
  const Conv2dOptions opt{.stride = 1, .pad = s.dilation * (s.k / 2), .dilation = s.dilation};
  ConvRow row{s.name, o.batch, s.ci, s.co, hw, s.dilation};
  {
    NoGradGuard guard;
    const Tensor y = conv2d(x, w, b, opt);  // warm-up: algorithm choice, workspace
    row.max_rel_err = sampled_error(y, x, w, s.dilation);
    row.fwd_ms = cli::device_median_ms(d, o.repeats, [&] { conv2d(x, w, b, opt); });
  }
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  const Tensor y = conv2d(x, w, b, opt);
  const Tensor dy = Tensor::ones(y.shape(), DType::f32, d);
  y.backward(dy, /*retain_graph=*/true);  // warm-up
  row.bwd_ms = cli::device_median_ms(d, o.repeats, [&] { y.backward(dy, true); });
  const double flops = 2.0 * double(o.batch * s.co * hw * hw * s.ci * s.k * s.k);
  row.fwd_tflops = flops / (row.fwd_ms * 1e-3) / 1e12;
  row.bwd_tflops = 2 * flops / (row.bwd_ms * 1e-3) / 1e12;
  return row;
}

// Dense TF32 rate of this device: an 8192³ cuBLAS GEMM through matmul() with TF32 on.
double measured_tf32_tflops() {
  const bool was = tf32_enabled();
  set_tf32_enabled(true);
  NoGradGuard guard;
  const int64_t n = 8192;
  Generator gen(2);
  const Tensor a = rand_uniform({n, n}, -1, 1, DType::f32, Device::cuda(), &gen);
  const Tensor b = rand_uniform({n, n}, -1, 1, DType::f32, Device::cuda(), &gen);
  matmul(a, b);
  const double ms = cli::device_median_ms(Device::cuda(), 10, [&] { matmul(a, b); });
  set_tf32_enabled(was);
  return 2.0 * double(n) * n * n / (ms * 1e-3) / 1e12;
}

void run(ConvBenchOptions o) {
  const Device d = Device::parse(o.device);
  CBST_CHECK(!d.is_cuda() || cuda_available(), "bench conv: --device cuda but no CUDA device "
             "is available; use --device cpu");
  if (o.size == 0) o.size = d.is_cuda() ? 500 : 128;
  const std::vector<ConvShape> shapes = {
      {"vgg conv1_2", 64, 64, 3, 1, 1},
      {"vgg conv3_3", 256, 256, 3, 1, 4},
      {"vgg conv5_3", 512, 512, 3, 1, 16},
      {"r38 b6 dil4", 1024, 1024, 3, 4, 8},
  };
  const double peak = d.is_cuda() ? measured_tf32_tflops() : 0.0;
  std::vector<ConvRow> rows;
  for (const ConvShape& s : shapes) rows.push_back(bench_shape(s, o, d));

  std::printf("conv2d f32, input %lldx%lld, batch %lld, %s%s\n", (long long)o.size,
              (long long)o.size, (long long)o.batch,
              d.is_cuda() ? cuda_device_name(d.index).c_str() : "cpu",
              d.is_cuda() ? (tf32_enabled() ? ", TF32 on" : ", TF32 off") : "");
  if (d.is_cuda()) std::printf("measured dense TF32 GEMM rate: %.1f TFLOP/s\n", peak);
  std::printf("%-13s %-22s %9s %9s %9s %9s %8s %9s\n", "case", "shape (N,Ci,Co,HxW)", "fwd ms",
              "fwd TF/s", "bwd ms", "bwd TF/s", "% peak", "max rel");
  for (const ConvRow& r : rows) {
    char shape[64];
    std::snprintf(shape, sizeof shape, "%lld,%lld,%lld,%lldx%lld", (long long)r.n, (long long)r.ci,
                  (long long)r.co, (long long)r.hw, (long long)r.hw);
    char frac[16] = "-";
    if (peak > 0)
      std::snprintf(frac, sizeof frac, "%.0f/%.0f", 100 * r.fwd_tflops / peak, 100 * r.bwd_tflops / peak);
    std::printf("%-13s %-22s %9.2f %9.3f %9.2f %9.3f %8s %9.1e\n", r.name.c_str(), shape, r.fwd_ms,
                r.fwd_tflops, r.bwd_ms, r.bwd_tflops, frac, r.max_rel_err);
  }
  if (!o.json.empty()) {
    Json js = {{"benchmark", "conv"}, {"device", o.device}, {"size", o.size}, {"batch", o.batch},
               {"tf32", d.is_cuda() && tf32_enabled()}, {"tf32_peak_tflops", peak}, {"rows", Json::array()}};
    for (const ConvRow& r : rows)
      js["rows"].push_back({{"case", r.name}, {"n", r.n}, {"ci", r.ci}, {"co", r.co}, {"hw", r.hw},
                            {"dilation", r.dilation}, {"fwd_ms", r.fwd_ms}, {"bwd_ms", r.bwd_ms},
                            {"fwd_tflops", r.fwd_tflops}, {"bwd_tflops", r.bwd_tflops},
                            {"fwd_peak_fraction", peak > 0 ? r.fwd_tflops / peak : 0.0},
                            {"bwd_peak_fraction", peak > 0 ? r.bwd_tflops / peak : 0.0},
                            {"max_rel_err", r.max_rel_err}});
    write_text_atomic(o.json, json_text(js, 2) + "\n");
  }
  // Sampled check: TF32 inputs keep 10 mantissa bits, so a relative error (over Σ|terms|)
  // above 1e-2 means a wrong result, not rounding.
  for (const ConvRow& r : rows)
    CBST_CHECK(r.max_rel_err < 1e-2, "bench conv: ", r.name, " output differs from the direct sum (",
               r.max_rel_err, ")");
}

cli::Command reg({.parent = "bench", .name = "conv",
                  .help = "conv2d forward/backward TFLOP/s on VGG16 and ResNet-38 shapes"},
                 [](CLI::App& cmd) {
                   auto o = std::make_shared<ConvBenchOptions>();
                   cmd.add_option("--device", o->device, "cpu or cuda")->capture_default_str();
                   cmd.add_option("--size", o->size, "input image size S (default 500 cuda, 128 cpu)")
                       ->check(cbst::cli::InRange(16, 4096));
                   cmd.add_option("--batch", o->batch, "batch size N")->check(cbst::cli::InRange(1, 64));
                   cmd.add_option("--repeats", o->repeats, "timed repetitions (median)")->check(cbst::cli::InRange(1, 1000));
                   cmd.add_option("--json", o->json, "also write the table as JSON here");
                   cmd.callback([o] { run(*o); });
                 });

}  // namespace
}  // namespace cbst
