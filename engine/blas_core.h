// What the CPU GEMM runs on: OpenBLAS's kernel family, and the family cbst asks OpenBLAS for
// where its own CPU detection falls back to an SSE-era one (engine/cpu/blas_core.cpp;
// tools/cli/main.cpp applies it, README "What `cbst` sets before it runs").
#pragma once

#include <string>

namespace cbst::kern {

// What the CPU GEMM runs on, for people and benchmark records: "OpenBLAS 0.3.21, SkylakeX
// kernels" (OpenBLAS's version and the kernel family it chose, openblas_get_corename()), or
// "cbst's blocked kernel" in a build without OpenBLAS.
std::string cpu_gemm_description();

// The SIMD this CPU and its OS support (__builtin_cpu_supports, which checks both).
struct CpuSimd {
  bool avx2_fma = false;  // AVX2 and FMA3
  bool avx512 = false;    // AVX-512 F, CD, BW, DQ and VL (Skylake-SP and later)
};
CpuSimd cpu_simd();

// OpenBLAS's kernel family for this process ("Haswell", "SkylakeX", ...), and its build
// (openblas_get_config(): "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..."); "" without OpenBLAS.
std::string openblas_core();
std::string openblas_config();

// The kernel family to ask OpenBLAS for (through OPENBLAS_CORETYPE, which it reads when it
// loads) when its own CPU detection chose `detected` for a CPU with `simd`; "" keeps its
// choice. OpenBLAS falls back to an SSE-era family (Prescott) on a CPU newer than its
// release knows: 0.3.21, Debian 12's, does so on Emerald Rapids (family 6, model 207), where
// its SGEMM then runs without AVX. Only such a fallback (an SSE-only family, or Sandy
// Bridge's AVX without FMA) is replaced: by SkylakeX with AVX-512, Haswell with AVX2 and FMA.
std::string openblas_core_override(const std::string& detected, CpuSimd simd);

}  // namespace cbst::kern
