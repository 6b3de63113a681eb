// `cbst bench ops`: the basic ops' kernels (engine/cuda/elementwise.cu, engine/cuda/reduce.cu
// and their CPU twins) on the shapes a segmentation step gives them, against memory bandwidth.
// These ops move bytes and do almost no arithmetic, so bandwidth is their ceiling.
//
// Columns:
//   ms        median wall time of --repeats runs after one warm-up (device synchronised);
//   MB        bytes the op must move at least: each input read once, the output written once;
//   GB/s      MB over ms;
//   % copy    (cuda) GB/s over the device-to-device copy bandwidth measured in the same run
//             (cudaMemcpy of a 1 GiB buffer, read + write counted).
// On cuda each case is first checked against the CPU: exactly, except sums (another order).
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
#include "engine/cuda_context.h"
#include "engine/json.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "selftrain/labeling_kernels.h"
#include "tools/cli/bench_timing.h"
#include "tools/cli/registry.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using namespace cbst;

struct BenchOpsOptions {
  std::string device = "cpu";
  int64_t batch = 16;
  int repeats = 0;  // 0: 5 on cpu, 50 on cuda
  bool check = true;
  std::string json;
};

// One op on one shape: `run` computes it from the inputs (on any device); `bytes` is what it
// must move at least; `rtol` is how far the device may be from the CPU (0: exactly).
struct OpCase {
  std::string name;
  std::vector<Tensor> inputs;  // on the CPU
  std::function<Tensor(const std::vector<Tensor>&)> run;
  double bytes;
  double rtol;
};

double nbytes(const Tensor& t) { return double(t.numel()) * double(dtype_size(t.dtype())); }

// The shapes of small-deeplabv3plus at 256², batch N: its stem's activations (N, 32, 128, 128),
// the decoder's (N, 64, 64, 64) and the logits (N, 19, 256, 256).
std::vector<OpCase> op_cases(int64_t n) {
  Generator gen(3);
  auto uniform = [&](const Shape& s) { return rand_uniform(s, -1, 1, DType::f32, Device::cpu(), &gen); };
  const Tensor stem = uniform({n, 32, 128, 128}), stem2 = uniform({n, 32, 128, 128});
  const Tensor dec = uniform({n, 64, 64, 64}), bias = uniform({64, 1, 1});
  const Tensor logits = uniform({n, 19, 256, 256});
  std::vector<OpCase> cases;
  cases.push_back({"relu", {stem}, [](const auto& x) { return relu(x[0]); }, 2 * nbytes(stem), 0.0});
  cases.push_back({"add", {stem, stem2}, [](const auto& x) { return add(x[0], x[1]); }, 3 * nbytes(stem), 0.0});
  cases.push_back({"add channel bias", {dec, bias}, [](const auto& x) { return add(x[0], x[1]); },
                   2 * nbytes(dec) + nbytes(bias), 0.0});
  cases.push_back({"gt scalar (u8 out)", {stem}, [](const auto& x) { return gt(x[0], 0.0); },
                   nbytes(stem) * 1.25, 0.0});
  cases.push_back({"nchw to nhwc copy", {dec}, [](const auto& x) { return x[0].permute({0, 2, 3, 1}).contiguous(); },
                   2 * nbytes(dec), 0.0});
  cases.push_back({"channel slice copy", {dec},
                   [](const auto& x) { return x[0].narrow(1, 16, 32).contiguous(); }, nbytes(dec), 0.0});
  // Float sums in another order than the CPU's (which accumulates in double): a tree of n
  // values errs by up to about log2(n)·ε·Σ|x|. For the 20 M logits that is 25·6e-8·1e7 ≈ 15
  // against a sum of a few thousand (values of mean 0), hence 1e-2 of it.
  cases.push_back({"sum of all", {logits}, [](const auto& x) { return sum(x[0]); }, nbytes(logits), 1e-2});
  cases.push_back({"sum over N, H, W", {dec}, [](const auto& x) { return sum(x[0], {0, 2, 3}); }, nbytes(dec), 1e-2});
  cases.push_back({"argmax over classes", {logits}, [](const auto& x) { return argmax(x[0], 1); },
                   nbytes(logits) * (1.0 + 8.0 / 4.0 / 19.0), 0.0});
  return cases;
}

// The largest |got − want| over the largest |want| (1 when want is all zeros).
double relative_gap(const Tensor& got, const Tensor& want) {
  const std::vector<double> g = got.to(Device::cpu()).to(DType::f64).contiguous().to_vector<double>();
  const std::vector<double> w = want.to(DType::f64).contiguous().to_vector<double>();
  double gap = 0, scale = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    gap = std::max(gap, std::abs(g[i] - w[i]));
    scale = std::max(scale, std::abs(w[i]));
  }
  return gap / std::max(scale, 1.0);
}

void run(const BenchOpsOptions& o) {
  const Device device = Device::parse(o.device);
  CBST_CHECK(!device.is_cuda() || cuda_available(), "bench ops: --device ", o.device,
             " but no CUDA device is available; use --device cpu");
  CBST_CHECK(o.batch >= 1, "bench ops: --batch must be at least 1, got ", o.batch);
  const int repeats = o.repeats > 0 ? o.repeats : (device.is_cuda() ? 50 : 5);
  double copy_gbs = 0.0;
#if CBST_WITH_CUDA
  if (device.is_cuda()) copy_gbs = labeling::device_copy_bandwidth_gbs(int64_t(1) << 30, 20, device);
#endif
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  std::printf("ops: batch %lld, %s (%s)\n", (long long)o.batch, device.str().c_str(),
              device.is_cuda() ? cuda_device_name(device.index).c_str() : (std::to_string(threads) + " threads").c_str());
  if (device.is_cuda()) std::printf("device copy bandwidth: %.1f GB/s\n", copy_gbs);
  std::printf("%-22s %10s %10s %10s %8s\n", "op", "ms", "MB", "GB/s", "% copy");
  Json rows = Json::array();
  for (const OpCase& c : op_cases(o.batch)) {
    std::vector<Tensor> inputs;
    for (const Tensor& t : c.inputs) inputs.push_back(t.to(device));
    NoGradGuard no_grad;
    if (device.is_cuda() && o.check) {
      const double gap = relative_gap(c.run(inputs), c.run(c.inputs));
      CBST_CHECK(gap <= c.rtol, "bench ops: ", c.name, " on ", device.str(), " is ", gap,
                 " away from the CPU's result (allowed ", c.rtol, "); the kernel is wrong, not timing it");
    }
    Tensor out = c.run(inputs);  // warm-up
    const double ms = cli::device_median_ms(device, repeats, [&] { out = c.run(inputs); });
    const double gbs = c.bytes / (ms * 1e-3) / 1e9;
    const double fraction = copy_gbs > 0 ? gbs / copy_gbs : 0.0;
    const std::string percent = copy_gbs > 0 ? std::to_string(int(100.0 * fraction + 0.5)) : "-";
    std::printf("%-22s %10.3f %10.1f %10.1f %8s\n", c.name.c_str(), ms, c.bytes / 1e6, gbs, percent.c_str());
    rows.push_back({{"op", c.name}, {"ms", ms}, {"bytes", c.bytes}, {"gbs", gbs}, {"copy_fraction", fraction}});
  }
  if (!o.json.empty()) {
    const Json js = {{"bench", "ops"}, {"device", device.str()}, {"batch", o.batch}, {"repeats", repeats},
                     {"threads", threads}, {"copy_gbs", copy_gbs}, {"ops", rows}};
    write_text_atomic(o.json, json_text(js, 2) + "\n");
  }
}

cbst::cli::Command reg(
    {.parent = "bench",
     .name = "ops",
     .help = "Element-wise ops and reductions on a segmentation step's shapes: ms, GB/s, % of device copy"},
    [](CLI::App& cmd) {
      auto o = std::make_shared<BenchOpsOptions>();
      cmd.add_option("--device", o->device, "cpu or cuda")->capture_default_str();
      cmd.add_option("--batch", o->batch, "batch N of the shapes (small-deeplabv3plus at 256x256)")
          ->capture_default_str();
      cmd.add_option("--repeats", o->repeats, "timed runs per op (default 5 cpu, 50 cuda)");
      cmd.add_flag("!--no-check", o->check, "skip the check against the CPU (cuda)");
      cmd.add_option("--json", o->json, "also write the results as JSON");
      cmd.callback([o] { run(*o); });
    });

}  // namespace
