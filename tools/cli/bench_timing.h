// Timing helpers shared by the `cbst bench` modes.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

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

}  // namespace cbst::cli
