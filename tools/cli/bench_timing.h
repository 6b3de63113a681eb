// Timing helpers shared by the `cbst bench` modes.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

#include "engine/cuda_context.h"
#include "engine/tensor.h"

namespace cbst::cli {

// Seconds on the steady clock (differences only).
inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The middle of the values (of an even count, the upper of the two middle ones).
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The median of `repeats` timings of f() in milliseconds, each between two calls of sync()
// (a device synchronisation; a no-op on the CPU). No warm-up: callers run f() first as needed.
template <class F, class Sync>
double median_ms(int repeats, F&& f, Sync&& sync) {
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    sync();
    const double t0 = now_s();
    f();
    sync();
    t.push_back((now_s() - t0) * 1e3);
  }
  return median(t);
}

// median_ms on a device: each run between two synchronisations of the device (none on the CPU).
template <class F>
double device_median_ms(Device d, int repeats, F&& f) {
  return median_ms(repeats, f, [d] {
    if (d.is_cuda()) cuda_synchronize(d.index);
  });
}

}  // namespace cbst::cli
