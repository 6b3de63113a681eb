// Subcommand registration for the `cbst` program.
//
// A subcommand lives in its own file here and registers itself at static-initialisation time:
//
//   static cbst::cli::Command reg({.parent = "bench", .name = "gemm",
//                                  .help = "f32 GEMM throughput"},
//                                 [](CLI::App& cmd) { /* add options, set cmd.callback(...) */ });
//
// `parent` groups commands (`cbst bench gemm`, `cbst weights inspect`); empty for top level.
// Callbacks report failures by throwing cbst::Error; main() prints "cbst: error: ..." on one
// line to stderr and exits 1.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace cbst::cli {

struct CommandInfo {
  std::string parent;
  std::string name;
  std::string help;
};

using CommandSetup = std::function<void(CLI::App& command)>;

struct Command {
  Command(CommandInfo info, CommandSetup setup);
};

struct RegisteredCommand {
  CommandInfo info;
  CommandSetup setup;
};
std::vector<RegisteredCommand>& registered_commands();

// Help text of the parent groups.
std::string group_help(const std::string& parent);

}  // namespace cbst::cli
