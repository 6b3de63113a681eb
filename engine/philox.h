// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11):
// a counter-based generator, so value i of a stream depends only on (seed, i) and is the
// same on the CPU and the GPU. Usable from host and device code.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define CBST_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define CBST_HOST_DEVICE inline
#endif

namespace cbst {

struct Philox4 {
  uint32_t v[4];
};

CBST_HOST_DEVICE uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = uint64_t(a) * uint64_t(b);
  *hi = uint32_t(p >> 32);
  return uint32_t(p);
}

// Four 32-bit words for counter `ctr` under key `seed`.
CBST_HOST_DEVICE Philox4 philox4x32(uint64_t ctr, uint64_t seed) {
  uint32_t c0 = uint32_t(ctr), c1 = uint32_t(ctr >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo32(0xD2511F53u, c0, &hi0);
    const uint32_t lo1 = mulhilo32(0xCD9E8D57u, c2, &hi1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Uniform in (0, 1] from two words, with 53 random bits (exact in double, never 0 so that
// log() in Box-Muller is finite).
CBST_HOST_DEVICE double philox_uniform01(uint32_t lo, uint32_t hi) {
  const uint64_t bits = ((uint64_t(hi) << 32) | lo) >> 11;
  return (double(bits) + 1.0) * (1.0 / 9007199254740992.0);
}

}  // namespace cbst
