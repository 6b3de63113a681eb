// cbst: class-balanced self-training for semantic segmentation.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <new>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "engine/blas_core.h"
#include "engine/check.h"
#include "engine/dist.h"
#include "selftrain/eval_record.h"  // cbst_version
#include "tools/cli/registry.h"
#include "tools/cli/validators.h"

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

namespace {

// What the program is doing, for the one line printed when memory runs out where no reader
// caught it (readers name their file: engine/check.h naming_out_of_memory). Set before the
// work starts so that reporting needs no allocation.
std::string g_stage = "reading the command line";

constexpr const char* kOutOfMemoryAdvice =
    "free memory or use a machine with more, or give the command less to hold at once "
    "(a smaller --batch, --crop or --size, or fewer images)";

// "cbst: error: ", or with several data-parallel processes "cbst (rank 1 of 4): error: ".
std::string g_error_prefix = "cbst: error: ";

void print_out_of_memory() {
  std::fprintf(stderr, "%sout of memory while %s; %s\n", g_error_prefix.c_str(), g_stage.c_str(), kOutOfMemoryAdvice);
}

// CLI11 reads a config file line by line and, when a line does not fit in memory, stops
// quietly (std::getline sets badbit) and runs with what it read so far. An options file is
// a few KB: refuse one that cannot be, before it is read.
constexpr uintmax_t kMaxConfigBytes = uintmax_t(1) << 20;

std::string config_file_size(const std::string& path) {
  std::error_code ec;
  const uintmax_t bytes = std::filesystem::file_size(path, ec);
  if (ec || bytes <= kMaxConfigBytes) return "";  // a missing file is CLI11's to report
  return "config file '" + path + "' is " + std::to_string(bytes) +
         " bytes; an options file is at most 1 MiB: is it the right file?";
}

// Exit statuses (README "The cbst program"): 0 done, 1 a runtime error (bad data, files,
// numbers), 2 a usage error (an unknown option or subcommand, a missing or malformed value).
constexpr int kUsageError = 2;

// "cbst weights inspect": the command path that was parsed, for g_stage.
std::string command_path(const CLI::App& app) {
  std::string path = "cbst";
  for (const CLI::App* at = &app; !at->get_subcommands().empty();) {
    at = at->get_subcommands().front();
    path += " " + at->get_name();
  }
  return path;
}

// CLI11's wording of a usage error, in ours: the option first, lower case, no "INI". What it
// does not recognise passes unchanged. `what` is the message on one line.
std::string plain_usage_message(const CLI::ParseError& e, const std::string& what) {
  const auto after = [&](std::string_view prefix) { return what.substr(prefix.size()); };
  if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
    // "The following argument(s) was/were not expected: B A", in reverse order (rjoin).
    const size_t colon = what.find(": ");
    if (colon == std::string::npos) return what;
    std::istringstream in(what.substr(colon + 2));
    std::vector<std::string> words;
    for (std::string word; in >> word;) words.insert(words.begin(), word);
    std::vector<std::string> options, values;
    for (const std::string& word : words)
      if (word.size() > 1 && word[0] == '-')
        options.push_back(word);
      else
        values.push_back("'" + word + "'");
    const auto listed = [](const std::string& one, const std::vector<std::string>& items) {
      std::string text = one + (items.size() > 1 ? "s " : " ");
      for (size_t i = 0; i < items.size(); ++i) text += (i ? ", " : "") + items[i];
      return text;
    };
    std::string out;
    if (!options.empty()) out = listed("unknown option", options);
    if (!values.empty()) out += (out.empty() ? "" : "; ") + listed("unexpected argument", values);
    return out.empty() ? what : out;
  }
  if (dynamic_cast<const CLI::ConfigError*>(&e) && what.starts_with("INI was not able to parse ")) {
    const std::string item = after("INI was not able to parse ");
    if (item.size() > 3 && item.ends_with(".++"))
      return "the config file's section [" + item.substr(0, item.size() - 3) + "] names no subcommand here";
    if (item.starts_with("[")) return "the config file has a line that is not TOML: '" + item + "'";
    const size_t dot = item.rfind('.');
    const std::string key = dot == std::string::npos ? item : item.substr(dot + 1);
    const std::string where = dot == std::string::npos ? "outside any [section]" : "in [" + item.substr(0, dot) + "]";
    return "the config file sets '" + key + "' " + where +
           ", which names no option there (keys are the long option names without --, under [subcommand])";
  }
  constexpr std::string_view kUnreadable = " was not readable (missing?)";
  if (dynamic_cast<const CLI::FileError*>(&e) && what.ends_with(kUnreadable))
    return "cannot read the config file '" + what.substr(0, what.size() - kUnreadable.size()) + "'; is the path right?";
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&e)) {
    // "NAME: 1 required TYPE missing", "NAME: At Most 1 required but received K".
    const size_t colon = what.find(": ");
    if (colon == std::string::npos) return what;
    const std::string name = what.substr(0, colon), rest = what.substr(colon + 2);
    if (rest.ends_with(" missing")) return name + " needs a value";
    if (rest.starts_with("At Most ")) return name + " is given " + rest.substr(rest.rfind(' ') + 1) + " times; give it once";
    return what;
  }
  if (dynamic_cast<const CLI::ConversionError*>(&e) && what.starts_with("Could not convert: ")) {
    // "Could not convert: --flip = maybe": a flag given a value that is no truth value.
    const std::string rest = after("Could not convert: ");
    const size_t eq = rest.find(" = ");
    if (eq != std::string::npos) return rest.substr(0, eq) + ": '" + rest.substr(eq + 3) + "' is not true or false";
  }
  return what;
}

// Unsigned options (seeds): CLI11 reads "-3" as 2^64 − 3. Refuse a sign instead, in every
// subcommand that has one.
void refuse_negative_unsigned(CLI::App& app) {
  for (CLI::Option* option : app.get_options())
    if (option->get_type_name().starts_with("UINT")) option->check(cbst::cli::NotNegative());
  for (CLI::App* sub : app.get_subcommands({})) refuse_negative_unsigned(*sub);
}

// std::bad_alloc can also end the program where no catch can see it: thrown in a worker
// thread, an OpenMP region or a noexcept function, it calls std::terminate. Say the same one
// line then, and exit with the error status; anything else keeps the default report.
std::terminate_handler g_default_terminate = nullptr;

[[noreturn]] void on_terminate() {
  if (std::exception_ptr e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::bad_alloc&) {
      print_out_of_memory();
      std::_Exit(1);
    } catch (...) {
    }
  }
  if (g_default_terminate) g_default_terminate();
  std::abort();
}

}  // namespace

int main(int argc, char** argv) {
  // libgomp reads OMP_WAIT_POLICY and GOMP_SPINCOUNT when it loads, before main. OpenBLAS
  // runs single-threaded inside our OpenMP regions (engine/cpu/gemm.cpp), so an idle OpenMP
  // thread competes with no BLAS thread; a short spin after each region (GOMP_SPINCOUNT
  // 100000, about a millisecond) saves the futex wake-up between the many small layers of a
  // step: 10–25 % of the small models' steps on two cores against the passive policy, which
  // we used while OpenBLAS ran threads of its own. Past the spin the thread sleeps, so the
  // data loader's threads and other processes get the cores back (libgomp spins far less
  // when it has more threads than cores). Unless the user chose, run again with that count.
  bool run_again = false;
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT")) {
    setenv("GOMP_SPINCOUNT", "100000", 1);
    run_again = true;
  }
  // OpenBLAS, too, reads OPENBLAS_CORETYPE only when it loads. Where its CPU detection fell
  // back to SSE-era kernels on a CPU with AVX2 or AVX-512 (engine/blas_core.h:
  // OpenBLAS 0.3.21 on Emerald Rapids), half of a demo's time went to an SGEMM without AVX;
  // unless the user chose, run again with the family the CPU supports.
  if (!std::getenv("OPENBLAS_CORETYPE")) {
    const std::string core = cbst::kern::openblas_core_override(cbst::kern::openblas_core(), cbst::kern::cpu_simd());
    if (!core.empty()) {
      setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
      run_again = true;
    }
  }
  if (run_again) execv("/proc/self/exe", argv);  // returns only on failure: then carry on as we are
  g_default_terminate = std::set_terminate(on_terminate);
  using namespace cbst::cli;
  CLI::App app{"cbst: class-balanced self-training (Zou et al., ECCV 2018) for semantic segmentation"};
  app.require_subcommand(1);
  // The CPU GEMM line is asked of OpenBLAS only when --version is given, not at every start.
  app.set_version_flag("--version", std::function<std::string()>([] {
                         return std::string("cbst ") + cbst::cbst_version() + "\nCPU GEMM: " +
                                cbst::kern::cpu_gemm_description();
                       }));
  // Every option can also come from a TOML file: `cbst --config run.toml adapt ...`, with
  // the subcommand's options under [adapt] (as the run folder's config.toml holds them).
  app.set_config("--config", "", "read options from a TOML file")->check(config_file_size);
  // A misspelt key or section in a config file is an error, not silently ignored
  // (subcommands inherit this when they are added below).
  app.allow_config_extras(CLI::config_extras_mode::error);
  // Every option's default in --help (subcommands copy these defaults when they are added).
  // An option whose default depends on others says so in its text and takes 0 for "auto".
  app.option_defaults()->always_capture_default();

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
  refuse_negative_unsigned(app);

  // Runs once the options (and any --config file) are read, before the command's callback.
  app.parse_complete_callback([&] { g_stage = "running `" + command_path(app) + "`"; });

  int rc = 0;
  try {
    // Under mpirun/srun: MPI starts here (engine/dist.h); rank 0 alone prints results and logs.
    const cbst::dist::Communicator& comm = cbst::dist::world();
    if (comm.size() > 1) {
      g_error_prefix = "cbst (rank " + std::to_string(comm.rank()) + " of " + std::to_string(comm.size()) + "): error: ";
      if (comm.rank() != 0 && !std::freopen("/dev/null", "w", stdout))
        std::fprintf(stderr, "%scannot silence standard output of this rank\n", g_error_prefix.c_str());
    }
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      rc = app.exit(e);  // --help, --version: to stdout, exit 0
    } else {
      // A usage error: one line, what was wrong and where the options are described.
      std::string what = e.what();
      for (char& c : what)
        if (c == '\n') c = ' ';
      while (!what.empty() && (what.back() == ' ' || what.back() == '.')) what.pop_back();
      const std::string where = command_path(app);
      // An unknown subcommand reaches CLI11 as "a subcommand is required": name it.
      const CLI::App* at = &app;
      while (!at->get_subcommands().empty()) at = at->get_subcommands().front();
      int depth = 1;
      for (const CLI::App* p = at; p->get_parent(); p = p->get_parent()) ++depth;
      if (what == "A subcommand is required" && depth < argc && argv[depth][0] != '-') {
        std::string names;
        for (const CLI::App* sub : at->get_subcommands({})) names += (names.empty() ? "" : ", ") + sub->get_name();
        what = "unknown subcommand '" + std::string(argv[depth]) + "' (the subcommands are " + names + ")";
      }
      what = plain_usage_message(e, what);
      std::fprintf(stderr, "%s%s; see `%s --help`\n", g_error_prefix.c_str(), what.c_str(), where.c_str());
      rc = kUsageError;
    }
  } catch (const cbst::Error& e) {
    // The message alone: no check expression, no source path (CBST_DEBUG_ERRORS=1 shows them).
    const char* debug = std::getenv("CBST_DEBUG_ERRORS");
    if (debug && *debug && std::string(debug) != "0") {
      std::fprintf(stderr, "%s%s\n", g_error_prefix.c_str(), e.what());
    } else if (e.user_message().empty()) {
      std::fprintf(stderr, "%sinternal error (a consistency check failed); rerun with CBST_DEBUG_ERRORS=1 to see "
                           "which, and report it with the command line\n", g_error_prefix.c_str());
    } else {
      std::fprintf(stderr, "%s%s\n", g_error_prefix.c_str(), e.user_message().c_str());
    }
    rc = 1;
  } catch (const std::bad_alloc&) {
    print_out_of_memory();
    rc = 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s%s\n", g_error_prefix.c_str(), e.what());
    rc = 1;
  }
  // Tables and JSON on stdout are results: a full disk or a closed pipe must not exit 0.
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::fprintf(stderr, "%swriting to standard output failed: %s; is the disk full?\n", g_error_prefix.c_str(),
                 std::strerror(errno));
    if (!rc) rc = 1;
  }
  // An error on one rank ends them all (the others may be waiting for it in a collective).
  if (rc) cbst::dist::abort_other_ranks(rc);
  cbst::dist::finalize();
  return rc;
}
