// `cbst bench labeling`: throughput of the two labelling passes (DESIGN §7, §9).
//
//   pass 1  class_thresholds: interpolate p (and q), s = q·p, argmax/max, pools, thresholds;
//   pass 2  pseudo_labels:    interpolate, s/threshold, argmax, ≥ 1 test, u8 labels.
//
// Inputs are softmax probabilities of random logits at network resolution
// ⌈H/stride⌉ × ⌈W/stride⌉ (stride 8: ResNet-38 / FCN8s before its last upsampling), and with
// --prior a random prior at ⌈H/4⌉ × ⌈W/4⌉ (or --prior-size).
//
// Columns, per pass:
//   ms           median wall time of --repeats runs after one warm-up (device synchronised);
//   Mpix/s       label pixels N·H·W per second;
//   GB/s moved   bytes the pass must move at least (probs + prior read once, labels written)
//                per second: what the fused kernels touch in DRAM;
//   GB/s equiv   N·C·H·W·4 bytes per second: the label-resolution score tensor an unfused
//                implementation (interpolate, then threshold; tools/bench/labeling_torch.py)
//                streams, i.e. the work done in memory-bandwidth terms;
//   % copy       (cuda) those rates over the device-to-device copy bandwidth measured in the
//                same run (cudaMemcpy of a 1 GiB buffer, read + write counted).
// On cuda the results are first checked against the CPU twin on the first image.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/atomic_file.h"
#include "engine/cuda_context.h"
#include "engine/json.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "selftrain/labeling_kernels.h"
#include "selftrain/pseudo_labels.h"
#include "tools/cli/bench_timing.h"
#include "tools/cli/registry.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using namespace cbst;

struct BenchLabelingOptions {
  int64_t images = 2;
  int64_t classes = 19;
  std::string size = "1024x2048";
  int64_t stride = 8;
  bool prior = false;
  std::string prior_size;  // default ⌈H/4⌉x⌈W/4⌉
  std::string method = "cbst";
  double portion = 0.2;
  int64_t pool_stride = 1;
  std::string device = "cpu";
  int repeats = 0;  // 0: 3 on cpu, 20 on cuda
  bool check = true;
  std::string json;
};

LabelSize parse_size(const std::string& s) {
  const size_t x = s.find('x');
  CBST_CHECK(x != std::string::npos, "size '", s, "' is not HxW (e.g. 1024x2048)");
  try {
    return {std::stoll(s.substr(0, x)), std::stoll(s.substr(x + 1))};
  } catch (const std::exception&) {
    CBST_THROW("size '", s, "' is not HxW (e.g. 1024x2048)");
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <class F>
double time_ms(Device device, int repeats, F&& f) {
  f();  // warm-up (and first allocation of scratch)
  return cli::device_median_ms(device, repeats, f);
}

void check_against_cpu(const Tensor& probs, const Tensor& prior, const ThresholdParams& tp,
                       const LabelParams& lp) {
  const Tensor p0 = probs.narrow(0, 0, 1);
  const Tensor p0_cpu = p0.to(Device::cpu());
  const Tensor q_cpu = prior.defined() ? prior.to(Device::cpu()) : Tensor();
  const ClassThresholds want = class_thresholds(p0_cpu, q_cpu, tp);
  const ClassThresholds got = class_thresholds(p0, prior, tp);
  CBST_CHECK(got.thresholds.to(Device::cpu()).to_vector<float>() ==
                     want.thresholds.to_vector<float>() &&
                 got.pool_sizes.to(Device::cpu()).to_vector<int64_t>() ==
                     want.pool_sizes.to_vector<int64_t>(),
             "bench labeling: device thresholds differ from the CPU twin");
  const Tensor labels = pseudo_labels(p0, prior, got.thresholds, lp).labels;
  CBST_CHECK(labels.to(Device::cpu()).to_vector<uint8_t>() ==
                 pseudo_labels(p0_cpu, q_cpu, want.thresholds, lp).labels.to_vector<uint8_t>(),
             "bench labeling: device labels differ from the CPU twin");
}

void run(const BenchLabelingOptions& o) {
  const Device device = Device::parse(o.device);
  const LabelSize size = parse_size(o.size);
  CBST_CHECK(o.images >= 1 && o.classes >= 1 && o.stride >= 1, "bench labeling: bad options");
  const int64_t h = ceil_div(size.height, o.stride), w = ceil_div(size.width, o.stride);
  const LabelSize psize = o.prior_size.empty()
                              ? LabelSize{ceil_div(size.height, 4), ceil_div(size.width, 4)}
                              : parse_size(o.prior_size);
  const int repeats = o.repeats > 0 ? o.repeats : (device.is_cuda() ? 20 : 3);

  // Softmax of logits uniform in [0, 6): max probabilities spread over (0.1, 1).
  Generator gen(7);
  const Tensor logits = rand_uniform({o.images, o.classes, h, w}, 0.0, 6.0, DType::f32, device, &gen);
  const Tensor e = exp(logits);
  const Tensor probs = (e / sum(e, {1}, true)).contiguous();
  Tensor prior;
  if (o.prior)
    prior = rand_uniform({o.classes, psize.height, psize.width}, 0.0, 1e-5, DType::f32, device, &gen);

  const ThresholdParams tp{.policy = threshold_policy_from_name(o.method),
                           .portion = o.portion,
                           .pool_stride = o.pool_stride,
                           .label_size = size};
  const LabelParams lp{.label_size = size};
  if (device.is_cuda() && o.check) check_against_cpu(probs, prior, tp, lp);

  ClassThresholds thr;
  const double ms1 = time_ms(device, repeats, [&] { thr = class_thresholds(probs, prior, tp); });
  const double ms2 = time_ms(device, repeats, [&] { (void)pseudo_labels(probs, prior, thr.thresholds, lp); });

  double copy_gbs = 0.0;
#if CBST_WITH_CUDA
  if (device.is_cuda()) copy_gbs = labeling::device_copy_bandwidth_gbs(int64_t(1) << 30, 20, device);
#endif

  const double pixels = double(o.images) * size.height * size.width;
  const double in_bytes = 4.0 * (double(probs.numel()) + (prior.defined() ? prior.numel() : 0));
  const double moved[2] = {in_bytes, in_bytes + pixels};
  const double equiv = 4.0 * pixels * o.classes;
  const double ms[2] = {ms1, ms2};
  const char* names[2] = {"thresholds", "labels"};

  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  std::printf("labeling: %lld images, %lld classes, labels %lldx%lld, probs %lldx%lld%s, %s p=%g "
              "pool stride %lld, %s (%s)\n",
              (long long)o.images, (long long)o.classes, (long long)size.height,
              (long long)size.width, (long long)h, (long long)w,
              prior.defined() ? (", prior " + std::to_string(psize.height) + "x" +
                                 std::to_string(psize.width)).c_str()
                              : "",
              o.method.c_str(), o.portion, (long long)o.pool_stride, device.str().c_str(),
              device.is_cuda() ? cuda_device_name(device.index).c_str()
                               : (std::to_string(threads) + " threads").c_str());
  if (device.is_cuda()) std::printf("device copy bandwidth: %.1f GB/s\n", copy_gbs);
  std::printf("%-11s %10s %10s %12s %12s %8s %8s\n", "pass", "ms", "Mpix/s", "GB/s moved",
              "GB/s equiv", "% copy", "% copy");
  std::printf("%-11s %10s %10s %12s %12s %8s %8s\n", "", "", "", "", "", "moved", "equiv");
  Json passes = Json::array();
  for (int k = 0; k < 2; ++k) {
    const double s = ms[k] * 1e-3;
    const double gbs_moved = moved[k] / s / 1e9, gbs_equiv = equiv / s / 1e9;
    const double f_moved = copy_gbs > 0 ? 100.0 * gbs_moved / copy_gbs : 0.0;
    const double f_equiv = copy_gbs > 0 ? 100.0 * gbs_equiv / copy_gbs : 0.0;
    std::printf("%-11s %10.3f %10.1f %12.2f %12.2f %8.1f %8.1f\n", names[k], ms[k],
                pixels / s / 1e6, gbs_moved, gbs_equiv, f_moved, f_equiv);
    passes.push_back({{"pass", names[k]}, {"ms", ms[k]}, {"mpix_per_s", pixels / s / 1e6}, {"bytes_moved", moved[k]},
                      {"gbs_moved", gbs_moved}, {"bytes_equiv", equiv}, {"gbs_equiv", gbs_equiv},
                      {"copy_fraction_moved", f_moved / 100.0}, {"copy_fraction_equiv", f_equiv / 100.0}});
  }
  if (!o.json.empty()) {
    const Json js = {{"bench", "labeling"}, {"device", device.str()}, {"images", o.images}, {"classes", o.classes},
                     {"height", size.height}, {"width", size.width}, {"probs_height", h}, {"probs_width", w},
                     {"prior", prior.defined()}, {"method", o.method}, {"portion", o.portion},
                     {"pool_stride", o.pool_stride}, {"repeats", repeats}, {"threads", threads},
                     {"copy_gbs", copy_gbs}, {"passes", passes}};
    write_text_atomic(o.json, json_text(js, 2) + "\n");
  }
}

cbst::cli::Command reg(
    {.parent = "bench",
     .name = "labeling",
     .help = "Pseudo-labelling passes (thresholds, labels): time, pixels/s, GB/s vs device copy"},
    [](CLI::App& cmd) {
      auto o = std::make_shared<BenchLabelingOptions>();
      cmd.add_option("--images", o->images, "number of target images N")->capture_default_str();
      cmd.add_option("--classes", o->classes, "number of classes C")->capture_default_str();
      cmd.add_option("--size", o->size, "label resolution HxW")->capture_default_str();
      cmd.add_option("--stride", o->stride, "network output stride (probs at H/stride x W/stride)")
          ->capture_default_str();
      cmd.add_flag("--prior", o->prior, "multiply by a spatial prior");
      cmd.add_option("--prior-size", o->prior_size, "prior resolution HxW (default H/4xW/4)");
      cmd.add_option("--method", o->method, "st or cbst (as adapt and pseudolabel say it)")
          ->check(CLI::IsMember({"st", "cbst"}))->capture_default_str();
      cmd.add_option("--portion", o->portion, "portion p of each pool")->capture_default_str();
      cmd.add_option("--pool-stride", o->pool_stride, "pool sub-sampling K")->capture_default_str();
      cmd.add_option("--device", o->device, "cpu or cuda")->capture_default_str();
      cmd.add_option("--repeats", o->repeats, "timed runs per pass (default 3 cpu, 20 cuda)");
      cmd.add_flag("!--no-check", o->check, "skip the check against the CPU twin (cuda)");
      cmd.add_option("--json", o->json, "also write the results as JSON");
      cmd.callback([o] { run(*o); });
    });

}  // namespace
