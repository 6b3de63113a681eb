#include "selftrain/run_dir.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <exception>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "data/image.h"
#include "engine/check.h"
#include "engine/cuda_context.h"
#include "engine/dist.h"

namespace cbst {

namespace fs = std::filesystem;

std::string format_fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string timestamp_now(bool milliseconds) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &utc);
  std::string s = buf;
  if (milliseconds) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::snprintf(buf, sizeof buf, ".%03lld", (long long)ms);
    s += buf;
  }
  return s + "Z";
}

MemoryUse memory_use(Device device) {
  MemoryUse m;
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) m.peak_rss_mib = double(usage.ru_maxrss) / 1024.0;  // KiB on Linux
  if (device.is_cuda()) m.cuda_peak_mib = double(cuda_memory_stats(device.index).peak_allocated) / (1024.0 * 1024.0);
  return m;
}

// An atomic write killed before its rename leaves ".NAME.tmp.PID.N" beside NAME; nothing
// else in a run folder is named like that. Those of a process that still runs are left.
static void remove_stale_temporaries(const std::string& path) {
  std::error_code ec;
  std::vector<fs::path> stale;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const size_t tmp = name.rfind(".tmp.");
    if (name.size() > 1 && name[0] == '.' && tmp != std::string::npos && tmp > 1 && it->is_regular_file(ec) &&
        name.find_first_not_of("0123456789.", tmp + 5) == std::string::npos) {
      const long pid = std::atol(name.c_str() + tmp + 5);
      const bool alive = pid > 0 && pid != long(::getpid()) && (::kill(pid_t(pid), 0) == 0 || errno == EPERM);
      if (!alive) stale.push_back(it->path());
    }
  }
  for (const fs::path& p : stale) fs::remove(p, ec);
}

// The round (adapt) or else the epoch (train) a metrics record belongs to; -1 when it has none.
static int64_t record_index(const Json& record) {
  if (!record.is_object()) return -1;
  for (const char* key : {"round", "epoch"}) {
    const auto it = record.find(key);
    if (it != record.end()) return it->is_number_integer() ? it->get<int64_t>() : -1;
  }
  return -1;
}

RunDir::RunDir(const std::string& path, bool resume)
    : path_(path), resume_(resume), writer_(dist::world().rank() == 0) {
  CBST_CHECK(!path.empty(), "no run folder given; pass --run DIR");
  if (!writer_) return;
  std::error_code ec;
  const bool has_run = fs::exists(fs::path(path) / "checkpoints" / "latest", ec);
  if (resume) {
    CBST_CHECK(has_run, "--resume: ", path, " holds no finished round or epoch (no checkpoints/latest); ",
               "start a new run without --resume");
  } else {
    CBST_CHECK(!has_run, "run folder ", path, " already holds a run; pass --resume to continue it ",
               "or choose another --run");
  }
  unwinding_at_start_ = std::uncaught_exceptions();
  created_ = !fs::exists(path, ec);
  fs::create_directories(path, ec);
  CBST_CHECK(!ec, "cannot create run folder ", path, ": ", ec.message(), "; choose a writable --run");
  log_ = std::fopen((fs::path(path) / "log.txt").c_str(), "a");
  CBST_CHECK(log_ != nullptr, "cannot write ", path, "/log.txt; choose a writable --run");
  // A run killed before its first checkpoint is started again without --resume: its
  // temporaries go either way.
  remove_stale_temporaries(path);
  if (resume) {
    std::ifstream in(fs::path(path) / "metrics.jsonl");
    std::string line;
    for (int64_t n = 1; std::getline(in, line); ++n) {
      const Json record = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      const int64_t index = record_index(record);
      if (index < 0)
        CBST_THROW(path, "/metrics.jsonl line ", n, " is not a record of cbst (no \"round\" or \"epoch\"); the ",
                   "run folder is damaged: start a new run");
      metrics_.emplace_back(index, line);
    }
  }
}

std::map<std::string, std::string> config_values(const std::string& toml) {
  std::map<std::string, std::string> out;
  std::istringstream in(toml);
  std::string line;
  auto trim = [](std::string s) {
    const size_t a = s.find_first_not_of(" \t\r"), b = s.find_last_not_of(" \t\r");
    return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
  };
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == '[') continue;
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string value = trim(line.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    out[trim(line.substr(0, eq))] = value;
  }
  return out;
}

std::vector<std::string> check_resume_options(const std::string& started, const std::string& now,
                                              const std::set<std::string>& may_change) {
  const auto before = config_values(started), after = config_values(now);
  // The list is the command's own; a name no option of it has would let nothing change.
  for (const std::string& k : may_change)
    CBST_CHECK(after.count(k), "--resume: the options that may change name --", k,
               ", which this command does not have; this is a defect of cbst, please report it");
  std::vector<std::string> changed, refused;
  for (const auto& [key, old_value] : before) {
    if (key == "resume" || key == "run") continue;
    const auto it = after.find(key);
    if (it == after.end() || it->second == old_value) continue;
    const std::string line = key + ": " + (old_value.empty() ? "(none)" : old_value) + " -> " +
                             (it->second.empty() ? "(none)" : it->second);
    (may_change.count(key) ? changed : refused).push_back(line);
  }
  if (!refused.empty()) {
    std::string list;
    for (const std::string& r : refused) list += (list.empty() ? "" : "; ") + r;
    std::string free;
    for (const std::string& k : may_change) free += (free.empty() ? "--" : ", --") + k;
    CBST_THROW("--resume with other options than the run was started with (", list, "); only ", free,
               " may change on resume: drop the others or start a new run");
  }
  return changed;
}

void RunDir::check_resume(const std::string& config_text, const std::set<std::string>& may_change) {
  if (!writer_) return;
  std::ifstream in(fs::path(path_) / "config.toml");
  const std::string started((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (started.empty() || config_text.empty()) return;
  for (const std::string& change : check_resume_options(started, config_text, may_change))
    log("resume with a changed option: " + change);
}

RunDir::~RunDir() {
  if (log_) std::fclose(log_);
  if (created_ && !started_ && std::uncaught_exceptions() > unwinding_at_start_) {
    std::error_code ec;
    fs::remove_all(path_, ec);  // best effort: the error being thrown is what the user needs
  }
}

std::string RunDir::file(const std::string& relative) const {
  const fs::path p = fs::path(path_) / relative;
  fs::create_directories(p.parent_path());
  return p.string();
}

void RunDir::log(const std::string& line) {
  if (!writer_) return;
  const std::string stamped = timestamp_now() + " " + line;
  // On a terminal a progress bar may hold the current line: clear it first.
  if (::isatty(1)) std::printf("\r\033[K");
  std::printf("%s\n", stamped.c_str());
  std::fflush(stdout);
  std::fprintf(log_, "%s\n", stamped.c_str());
  std::fflush(log_);
}

void RunDir::metric(const Json& record) {
  if (!writer_) return;
  const int64_t index = record_index(record);
  CBST_CHECK(index >= 0, "a metrics record needs its round or epoch: ", json_text(record));
  Json stamped = {{"time", timestamp_now(true)}};
  for (const auto& [key, value] : record.items()) stamped[key] = value;
  metrics_.emplace_back(index, json_text(stamped));
  flush_metrics();
}

void RunDir::drop_metrics_from(int64_t index) {
  if (!writer_) return;
  std::erase_if(metrics_, [&](const auto& m) { return m.first >= index; });
  flush_metrics();
}

std::vector<Json> RunDir::records(const std::string& event) const {
  std::vector<Json> out;
  for (const auto& [index, line] : metrics_) {
    Json record = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!record.is_object()) continue;
    if (event.empty() || record.value("event", std::string()) == event) out.push_back(std::move(record));
  }
  return out;
}

void RunDir::flush_metrics() const {
  std::string all;
  for (auto& [r, line] : metrics_) all += line + "\n";
  data::write_text_atomic(file("metrics.jsonl"), all);
}

void RunDir::write_text(const std::string& relative, const std::string& text) const {
  if (!writer_) return;
  data::write_text_atomic(file(relative), text);
}

// ---- progress

static double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  const int64_t t = int64_t(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(t / 3600), (long long)(t / 60 % 60), (long long)(t % 60));
  else std::snprintf(buf, sizeof buf, "%02lld:%02lld", (long long)(t / 60), (long long)(t % 60));
  return buf;
}

Progress::Progress(std::string label, int64_t total, RunDir* run, bool plain_lines)
    : label_(std::move(label)), total_(total), run_(run), start_(now_seconds()),
      quiet_(dist::world().rank() != 0) {
  // Data-parallel runs: only rank 0 prints (its bar stands for all ranks, which move together).
  plain_lines_ = plain_lines && !quiet_;
  tty_ = ::isatty(1) != 0 && !quiet_;
}

void Progress::update(int64_t done, const std::string& status) {
  const double t = now_seconds(), elapsed = t - start_;
  const double eta = done > 0 ? elapsed * double(total_ - done) / double(done) : NAN;
  if (tty_) {
    const int width = 24;
    const int fill = total_ > 0 ? int(width * done / total_) : 0;
    std::printf("\r%s [%s%s] %lld/%lld %s ETA %s %s", label_.c_str(), std::string(size_t(fill), '#').c_str(),
                std::string(size_t(width - fill), '.').c_str(), (long long)done, (long long)total_,
                format_duration(elapsed).c_str(), format_duration(eta).c_str(), status.c_str());
    std::fflush(stdout);
  } else if (plain_lines_ && t - last_print_ >= 10.0) {
    last_print_ = t;
    char buf[512];
    std::snprintf(buf, sizeof buf, "%s %lld/%lld elapsed %s ETA %s %s", label_.c_str(), (long long)done,
                  (long long)total_, format_duration(elapsed).c_str(), format_duration(eta).c_str(), status.c_str());
    std::printf("%s\n", buf);
    std::fflush(stdout);
  }
}

void Progress::finish(const std::string& status) {
  const double elapsed = now_seconds() - start_;
  if (tty_) std::printf("\r\033[K");
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s done: %lld in %s %s", label_.c_str(), (long long)total_, format_duration(elapsed).c_str(),
                status.c_str());
  if (run_) run_->log(buf);
  else if (!quiet_) std::printf("%s\n", buf);
}

RunEta::RunEta(int64_t total_steps, int64_t done_steps, int64_t total_units, int64_t done_units)
    : total_steps_(total_steps), steps_left_(std::max<int64_t>(0, total_steps - done_steps)),
      units_left_(std::max<int64_t>(0, total_units - done_units)), start_(now_seconds()) {}

void RunEta::step_done(double seconds) {
  ++steps_;
  step_seconds_ += seconds;
}

void RunEta::unit_done() { ++units_; }

double RunEta::seconds_left() const {
  if (steps_ == 0) return NAN;
  const double per_step = step_seconds_ / double(steps_);
  // Time outside the steps so far, per epoch or round; before the first one ends, what the
  // current one has spent (its pseudo-labelling, the initial evaluation) stands for each.
  const double outside = std::max(0.0, now_seconds() - start_ - step_seconds_) / double(std::max<int64_t>(1, units_));
  return double(std::max<int64_t>(0, steps_left_ - steps_)) * per_step +
         double(std::max<int64_t>(0, units_left_ - units_)) * outside;
}

}  // namespace cbst
