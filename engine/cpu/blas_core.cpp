// Which kernels OpenBLAS runs, and the family cbst asks for where OpenBLAS's own CPU detection
// falls back to an SSE-era one (engine/blas_core.h). tools/cli/main.cpp applies the choice:
// OpenBLAS reads OPENBLAS_CORETYPE once, when it loads, so `cbst` sets it and runs itself
// again, as it does for GOMP_SPINCOUNT.
#include <algorithm>
#include <array>
#include <cctype>
#include <sstream>
#include <string>
#include <string_view>

#include "engine/blas_core.h"

#if CBST_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace cbst::kern {

namespace {

// OpenBLAS's names (driver/others/dynamic.c) of the families whose SGEMM has neither AVX2 nor
// FMA: the Intel and AMD cores up to Nehalem and K10, the small cores, and Sandy Bridge (AVX
// without FMA). Bulldozer and its successors are left alone: OpenBLAS picks them on purpose.
constexpr std::array<std::string_view, 18> kWeakFamilies = {
    "unknown", "katmai",        "coppermine", "northwood", "prescott", "banias",
    "atom",    "core2",         "penryn",     "dunnington", "nehalem", "athlon",
    "opteron", "opteron(sse3)", "barcelona",  "nano",      "bobcat",  "sandybridge"};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

}  // namespace

CpuSimd cpu_simd() {
  CpuSimd s;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  s.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  s.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl");
#endif
  return s;
}

#if CBST_HAVE_OPENBLAS
// OpenBLAS returns its static strings; a null one (never seen) reads as "".
static std::string text(const char* s) { return s ? std::string(s) : std::string(); }
std::string openblas_core() { return text(openblas_get_corename()); }
std::string openblas_config() { return text(openblas_get_config()); }
#else
std::string openblas_core() { return {}; }
std::string openblas_config() { return {}; }
#endif

std::string openblas_core_override(const std::string& detected, CpuSimd simd) {
  if (detected.empty()) return {};  // no OpenBLAS
  const std::string d = lower(detected);
  if (std::find(kWeakFamilies.begin(), kWeakFamilies.end(), d) == kWeakFamilies.end()) return {};
  if (simd.avx512 && simd.avx2_fma) return "SkylakeX";
  if (simd.avx2_fma) return "Haswell";
  return {};
}

std::string cpu_gemm_description() {
#if CBST_HAVE_OPENBLAS
  std::string name, version;
  std::istringstream(openblas_config()) >> name >> version;
  if (name.empty()) name = "OpenBLAS";
  return name + (version.empty() ? "" : " " + version) + ", " + openblas_core() + " kernels";
#else
  return "cbst's blocked kernel";
#endif
}

}  // namespace cbst::kern
