// `cbst --config FILE`: CLI11's TOML reader, as tools/cli/main.cpp sets it up.
#include <CLI/CLI.hpp>
#include <sstream>
#include <string>

#include "fuzz/fuzz_common.h"

void fuzz_one(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  try {
    CLI::ConfigTOML().from_config(in);
  } catch (const CLI::Error&) {
  }
}
