// cbst bench gemm: f32 GEMM throughput, CPU (built-in blocked kernel and OpenBLAS) and CUDA
// (cuBLAS, with and without TF32). Each variant is checked against the f64 CPU result first.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "engine/atomic_file.h"
#include "engine/autograd.h"
#include "engine/blas_core.h"
#include "engine/cuda_context.h"
#include "engine/json.h"
#include "engine/kernels.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "tools/cli/bench_timing.h"
#include "tools/cli/registry.h"
#include "tools/cli/validators.h"

namespace cbst {
namespace {

struct GemmBenchOptions {
  int64_t size = 1024;
  int repeats = 5;
  std::string json;
};

struct GemmRow {
  std::string variant;
  double ms = 0, gflops = 0, max_rel_err = 0;
};

using cli::now_s;

GemmRow time_variant(const std::string& name, const Tensor& a, const Tensor& b, const Tensor& ref,
                     int repeats) {
  NoGradGuard guard;
  const Device d = a.device();
  Tensor c = matmul(a, b);  // warm-up (and cuBLAS handle creation)
  cuda_synchronize();
  const double max_err = max(abs(sub(c.to(Device::cpu()).to(DType::f64), ref))).item<double>() /
                         max(abs(ref)).item<double>();
  const double t0 = now_s();
  for (int i = 0; i < repeats; ++i) c = matmul(a, b);
  if (d.is_cuda()) cuda_synchronize(d.index);
  const double dt = (now_s() - t0) / repeats;
  const double n = double(a.size(0));
  return {name, dt * 1e3, 2.0 * n * n * n / dt / 1e9, max_err};
}

void run(const GemmBenchOptions& o) {
  Generator gen(1);
  const int64_t n = o.size;
  const Tensor a = rand_uniform({n, n}, -1, 1, DType::f32, Device::cpu(), &gen);
  const Tensor b = rand_uniform({n, n}, -1, 1, DType::f32, Device::cpu(), &gen);
  Tensor ref;
  {
    NoGradGuard guard;
    ref = matmul(a.to(DType::f64), b.to(DType::f64));
  }
  std::vector<GemmRow> rows;
  kern::set_cpu_gemm_impl(kern::CpuGemmImpl::blocked);
  rows.push_back(time_variant("cpu blocked", a, b, ref, o.repeats));
  if (kern::cpu_has_openblas()) {
    kern::set_cpu_gemm_impl(kern::CpuGemmImpl::openblas);
    rows.push_back(time_variant("cpu openblas", a, b, ref, o.repeats));
  }
  kern::set_cpu_gemm_impl(kern::CpuGemmImpl::automatic);
  if (cuda_available()) {
    const Tensor ga = a.to(Device::cuda()), gb = b.to(Device::cuda());
    set_tf32_enabled(false);
    rows.push_back(time_variant("cuda cublas fp32", ga, gb, ref, o.repeats * 20));
    set_tf32_enabled(true);
    rows.push_back(time_variant("cuda cublas tf32", ga, gb, ref, o.repeats * 20));
  }
  std::printf("f32 GEMM %lldx%lldx%lld (%s; %s)\n", (long long)n, (long long)n, (long long)n,
              kern::cpu_gemm_description().c_str(), cuda_available() ? cuda_device_name().c_str() : "no CUDA device");
  std::printf("%-18s %10s %10s %12s\n", "variant", "ms", "GFLOP/s", "max rel err");
  for (const GemmRow& r : rows)
    std::printf("%-18s %10.2f %10.1f %12.2e\n", r.variant.c_str(), r.ms, r.gflops, r.max_rel_err);
  if (!o.json.empty()) {
    Json js = {{"benchmark", "gemm"}, {"m", n}, {"n", n}, {"k", n}, {"cpu_gemm", kern::cpu_gemm_description()},
               {"rows", Json::array()}};
    for (const GemmRow& r : rows)
      js["rows"].push_back({{"variant", r.variant}, {"ms", r.ms}, {"gflops", r.gflops}, {"max_rel_err", r.max_rel_err}});
    write_text_atomic(o.json, json_text(js, 2) + "\n");
  }
}

cli::Command reg({.parent = "bench", .name = "gemm", .help = "f32 GEMM GFLOP/s: CPU blocked, OpenBLAS, cuBLAS"},
                 [](CLI::App& cmd) {
                   auto o = std::make_shared<GemmBenchOptions>();
                   cmd.add_option("--size", o->size, "matrix size N (N×N×N)")->check(cbst::cli::InRange(1, 16384));
                   cmd.add_option("--repeats", o->repeats, "timed repetitions (CPU)")->check(cbst::cli::InRange(1, 1000));
                   cmd.add_option("--json", o->json, "also write the table as JSON here");
                   cmd.callback([o] { run(*o); });
                 });

}  // namespace
}  // namespace cbst
