// Range checks for options, with bounds written for people. CLI11's Range prints its bounds
// with std::to_string: "Value 2 not in range 0.000000 to 1.000000", and PositiveNumber's
// bounds come out as 0.000000 and a 309-digit number.
#pragma once

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace cbst::cli {

// 0.5, 4096, 1e+12: the shortest form that reads back as the same bound for these values.
inline std::string bound_str(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

// lo ≤ value ≤ hi. A bound of 2^40 or more is no bound for people: "at least lo".
inline CLI::Validator InRange(double lo, double hi) {
  const bool unbounded = hi >= double(int64_t(1) << 40);
  const std::string range = unbounded ? ">= " + bound_str(lo) : bound_str(lo) + ".." + bound_str(hi);
  return CLI::Validator(
      [lo, hi, unbounded](std::string& input) -> std::string {
        char* end = nullptr;
        errno = 0;
        const double v = std::strtod(input.c_str(), &end);
        if (input.empty() || end == input.c_str() || *end != 0 || errno == ERANGE)
          return "'" + input + "' is not a number";
        if (v < lo || v > hi)
          return input + " is out of range: " +
                 (unbounded ? "it must be at least " + bound_str(lo)
                            : "it must lie in " + bound_str(lo) + ".." + bound_str(hi));
        return "";
      },
      range);
}

// value > 0.
inline CLI::Validator Positive() {
  return CLI::Validator(
      [](std::string& input) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(input.c_str(), &end);
        if (input.empty() || end == input.c_str() || *end != 0) return "'" + input + "' is not a number";
        if (!(v > 0)) return input + " is out of range: it must be greater than 0";
        return "";
      },
      "> 0");
}

// No sign: for unsigned options, which CLI11 reads "-3" into as 2^64 − 3. No text in --help.
inline CLI::Validator NotNegative() {
  return CLI::Validator(
      [](std::string& input) -> std::string {
        const size_t first = input.find_first_not_of(" \t");
        const bool negative = first != std::string::npos && input[first] == '-';
        return negative ? input + " is negative; it must be 0 or more" : "";
      },
      "");
}

// Test scales, comma-separated, each a number in (0, 8], e.g. 0.9,1,1.2; false if `text` is not.
inline bool read_scale_list(const std::string& text, std::vector<double>& scales) {
  scales.clear();
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    char* end = nullptr;
    const double v = std::strtod(part.c_str(), &end);
    if (part.empty() || end == part.c_str() || *end != 0 || !(v > 0 && v <= 8)) return false;
    scales.push_back(v);
    if (comma == std::string::npos) return true;
    start = comma + 1;
  }
}

inline CLI::Validator ScaleList() {
  return CLI::Validator(
      [](std::string& input) -> std::string {
        std::vector<double> scales;
        return read_scale_list(input, scales)
                   ? ""
                   : "'" + input + "' is not a list of scales like 0.9,1,1.2 (each above 0, at most 8)";
      },
      "S,S,...");
}

}  // namespace cbst::cli
