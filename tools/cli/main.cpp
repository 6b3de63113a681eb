// cbst: class-balanced self-training for semantic segmentation.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <cstring>
#include <map>

#include "engine/check.h"
#include "tools/cli/registry.h"

namespace cbst::cli {

std::vector<RegisteredCommand>& registered_commands() {
  static std::vector<RegisteredCommand> commands;
  return commands;
}

Command::Command(CommandInfo info, CommandSetup setup) {
  registered_commands().push_back({std::move(info), std::move(setup)});
}

std::string group_help(const std::string& parent) {
  if (parent == "bench") return "Benchmarks: print a table and write JSON";
  if (parent == "weights") return "Inspect and convert external weight files";
  return parent;
}

}  // namespace cbst::cli

int main(int argc, char** argv) {
  // libgomp reads OMP_WAIT_POLICY when it loads, before main: idle OpenMP threads that spin
  // after each parallel region starve OpenBLAS's own threads (convolutions ran 2–10× slower
  // on two cores). Unless the user chose a policy, run again with the passive one.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then carry on as we are
  }
  using namespace cbst::cli;
  CLI::App app{"cbst: class-balanced self-training (Zou et al., ECCV 2018) for semantic segmentation"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "cbst 0.1.0");
  // Every option can also come from a TOML file: `cbst --config run.toml adapt ...`, with
  // the subcommand's options under [adapt] (as the run folder's config.toml holds them).
  app.set_config("--config", "", "read options from a TOML file");
  // A misspelt key or section in a config file is an error, not silently ignored
  // (subcommands inherit this when they are added below).
  app.allow_config_extras(CLI::config_extras_mode::error);

  std::map<std::string, CLI::App*> groups;
  auto group = [&](const std::string& parent) -> CLI::App& {
    if (parent.empty()) return app;
    auto it = groups.find(parent);
    if (it == groups.end()) {
      CLI::App* g = app.add_subcommand(parent, group_help(parent));
      g->require_subcommand(1);
      it = groups.emplace(parent, g).first;
    }
    return *it->second;
  };
  for (auto& cmd : registered_commands()) {
    CLI::App* sub = group(cmd.info.parent).add_subcommand(cmd.info.name, cmd.info.help);
    cmd.setup(*sub);
  }

  int rc = 0;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    rc = app.exit(e);
  } catch (const cbst::Error& e) {
    std::fprintf(stderr, "cbst: error: %s\n", e.what());
    rc = 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cbst: error: %s\n", e.what());
    rc = 1;
  }
  // Tables and JSON on stdout are results: a full disk or a closed pipe must not exit 0.
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::fprintf(stderr, "cbst: error: writing to standard output failed: %s; is the disk full?\n",
                 std::strerror(errno));
    return rc ? rc : 1;
  }
  return rc;
}
