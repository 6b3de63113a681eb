// Runs the built `cbst` program from a test: exit code plus stdout and stderr together.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace cbst::testing {

struct CliResult {
  int exit_code = -1;  // -1: killed by a signal
  std::string output;
};

// A whole file as text ("" when it cannot be read).
inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::filesystem::path cbst_binary() {
  return std::filesystem::path(CBST_BINARY_DIR) / "tools" / "cbst";
}

// `env` is prefixed to the command line ("NAME=value ..."); output goes through `log`.
inline CliResult run_cbst(const std::string& args, const std::string& log, const std::string& env = "") {
  const std::string cmd = (env.empty() ? "" : env + " ") + cbst_binary().string() + " " + args + " > " + log + " 2>&1";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text(log)};
}

}  // namespace cbst::testing
