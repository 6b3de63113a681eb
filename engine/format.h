// Numbers in messages, written for people: "1 epoch" and "2 epochs", not "1 epochs".
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace cbst {

// "1 image", "3 images"; `plural` for nouns that do not just take an s.
inline std::string count_of(int64_t n, const std::string& singular, const std::string& plural = "") {
  return std::to_string(n) + " " + (n == 1 ? singular : plural.empty() ? singular + "s" : plural);
}

// A number as a person writes it on a command line: 0.3, 1, 1e-05 (printf's %g).
inline std::string format_g(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace cbst
