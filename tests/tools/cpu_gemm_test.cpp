// Which SGEMM kernels OpenBLAS runs under cbst (engine/cpu/blas_core.cpp, tools/cli/main.cpp).
#include <gtest/gtest.h>

#include <string>

#include "engine/blas_core.h"
#include "engine/kernels.h"
#include "tests/tools/cli_runner.h"

namespace cbst {
namespace {

using kern::CpuSimd;
using kern::openblas_core_override;

constexpr CpuSimd kSse{false, false}, kAvx2{true, false}, kAvx512{true, true};

TEST(OpenblasCoreOverride, AnSseEraFallbackBecomesTheFamilyTheCpuSupports) {
  // OpenBLAS 0.3.21 on Emerald Rapids (family 6, model 207) reports Prescott.
  for (const char* weak : {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai", "Unknown",
                           "Barcelona", "Opteron(SSE3)", "Sandybridge", "prescott", "SANDYBRIDGE"}) {
    EXPECT_EQ(openblas_core_override(weak, kAvx512), "SkylakeX") << weak;
    EXPECT_EQ(openblas_core_override(weak, kAvx2), "Haswell") << weak;
    EXPECT_EQ(openblas_core_override(weak, kSse), "") << weak << ": a CPU without AVX2 keeps it";
  }
}

TEST(OpenblasCoreOverride, AFamilyOpenblasChoseOnPurposeIsKept) {
  // Zen 4 has AVX-512, yet OpenBLAS 0.3.21 runs its Haswell kernels there on purpose; the
  // Bulldozer line and the AVX2 and AVX-512 families are never replaced either.
  for (const char* chosen : {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", "Bulldozer",
                             "Piledriver", "Steamroller", "Excavator", "neoversen1", "armv8"}) {
    EXPECT_EQ(openblas_core_override(chosen, kAvx512), "") << chosen;
    EXPECT_EQ(openblas_core_override(chosen, kAvx2), "") << chosen;
  }
  EXPECT_EQ(openblas_core_override("", kAvx512), "") << "no OpenBLAS: nothing to ask for";
}

// The property users feel: on a CPU with AVX2 and FMA, `cbst` never runs OpenBLAS's SSE-era
// SGEMM, whatever OpenBLAS's own detection says (before the fix, Prescott on Emerald Rapids).
TEST(OpenblasCore, CbstRunsKernelsTheCpuSupports) {
  if (!kern::cpu_has_openblas()) GTEST_SKIP() << "built without OpenBLAS: cbst's blocked kernel runs";
  const std::string log = ::testing::TempDir() + "/cbst_version.log";
  const testing::CliResult r = testing::run_cbst("--version", log, "env -u OPENBLAS_CORETYPE");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string prefix = "CPU GEMM: OpenBLAS ";
  const size_t at = r.output.find(prefix);
  ASSERT_NE(at, std::string::npos) << r.output;
  const size_t comma = r.output.find(", ", at), end = r.output.find(" kernels", at);
  ASSERT_TRUE(comma != std::string::npos && end != std::string::npos && comma < end) << r.output;
  const std::string core = r.output.substr(comma + 2, end - comma - 2);
  EXPECT_EQ(openblas_core_override(core, kern::cpu_simd()), "")
      << "cbst ran OpenBLAS's " << core << " kernels on a CPU that supports more";
}

TEST(OpenblasCore, TheUsersChoiceIsKept) {
#if !defined(__x86_64__)
  GTEST_SKIP() << "Prescott is an x86 family";
#endif
  if (kern::openblas_config().find("DYNAMIC_ARCH") == std::string::npos)
    GTEST_SKIP() << "OpenBLAS built for one CPU (no DYNAMIC_ARCH): OPENBLAS_CORETYPE has no effect";
  const std::string log = ::testing::TempDir() + "/cbst_version_prescott.log";
  const testing::CliResult r = testing::run_cbst("--version", log, "OPENBLAS_CORETYPE=Prescott");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(", Prescott kernels"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace cbst
