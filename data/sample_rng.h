// Per-sample randomness derived from (seed, epoch, index) alone, never from thread timing,
// so a loader with any number of workers produces the same batches. Philox is keyed twice:
// key(epoch) = philox(epoch; seed), key(index) = philox(index; key(epoch)); draw k of the
// sample is philox(k; key(index)).
#pragma once

#include <cstdint>

#include "engine/philox.h"

namespace cbst::data {

class SampleRng {
 public:
  SampleRng(uint64_t seed, uint64_t epoch, uint64_t index) {
    const Philox4 a = philox4x32(epoch, seed);
    const uint64_t k1 = (uint64_t(a.v[1]) << 32) | a.v[0];
    const Philox4 b = philox4x32(index, k1);
    key_ = (uint64_t(b.v[1]) << 32) | b.v[0];
  }
  // Uniform in [0, 1).
  double uniform() {
    const Philox4 r = philox4x32(counter_++, key_);
    return philox_uniform01(r.v[0], r.v[1]) - 0x1p-53;  // (0, 1] -> [0, 1)
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Integer in [0, n), n > 0.
  uint64_t below(uint64_t n) {
    const uint64_t k = uint64_t(uniform() * double(n));
    return k < n ? k : n - 1;
  }

 private:
  uint64_t key_ = 0;
  uint64_t counter_ = 0;
};

}  // namespace cbst::data
