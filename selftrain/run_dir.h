// The run folder (DESIGN §8): config.toml, log.txt, metrics.jsonl, checkpoints/, rounds/,
// eval/, summary.json, report.html. Every file is written atomically (temp + rename), so a
// killed run never leaves a half-written file; metrics.jsonl is rewritten whole from memory.
#pragma once

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/json.h"
#include "engine/tensor.h"

namespace cbst {

// A number for log lines, rounded for people: `decimals` digits after the point.
std::string format_fixed(double v, int decimals);

class RunDir {
 public:
  // Creates `path` (and parents). Without `resume`, a folder holding a previous run is an
  // error; with it, the folder must hold one (checkpoints/latest).
  // In data-parallel runs (engine/dist.h) only rank 0 writes the folder; on the other ranks
  // this object checks nothing and log, metric and write_text do nothing (writer() is false).
  // Every rank reads the folder (resume, pseudo-labels), so it must be on a file system they
  // all see, as the data sets are.
  RunDir(const std::string& path, bool resume);
  // A run that fails before started() (bad data, model or options: validation) leaves no
  // folder behind when this object created it; from started() on, the folder stays for
  // --resume and for its log.
  ~RunDir();
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;
  void started() { started_ = true; }
  // With --resume: the options given now against the folder's config.toml
  // (check_resume_options); what may and did change is logged. Nothing to compare when
  // either is empty.
  void check_resume(const std::string& config_text, const std::set<std::string>& may_change);

  const std::string& path() const { return path_; }
  std::string file(const std::string& relative) const;  // path/relative, parents created

  // A line to stdout and log.txt (appended, flushed).
  void log(const std::string& line);
  // One JSON object per line in metrics.jsonl, `{"round": round, ...object}`; `round` lets
  // resume drop lines of a round that did not finish.
  void metric(const Json& object, int64_t round);
  void drop_metrics_from_round(int64_t round);
  void write_text(const std::string& relative, const std::string& text) const;
  bool resuming() const { return resume_; }
  bool writer() const { return writer_; }  // rank 0: this process writes the folder

 private:
  void flush_metrics() const;
  std::string path_;
  bool resume_;
  bool writer_ = true;
  bool created_ = false;   // this object made the folder
  bool started_ = false;
  int unwinding_at_start_ = 0;  // std::uncaught_exceptions() when constructed
  std::vector<std::pair<int64_t, std::string>> metrics_;
  FILE* log_ = nullptr;
};

// The `key = value` lines of a config.toml as we write them (one section, scalar values;
// quotes removed, comments and section headers skipped).
std::map<std::string, std::string> config_values(const std::string& toml);

// --resume against the options the run was started with (its config.toml, `started`): the
// keys in `may_change` may differ and are returned as "key: old -> new" lines to log; any
// other difference is an error naming each key with both values. A key present on one side
// only (an option newer than the run) is not compared.
std::vector<std::string> check_resume_options(const std::string& started, const std::string& now,
                                              const std::set<std::string>& may_change);

// Progress with ETA: a bar redrawn in place on a terminal, plain lines (every ~10 s and at
// the end) otherwise.
class Progress {
 public:
  Progress(std::string label, int64_t total, RunDir* run = nullptr);
  void update(int64_t done, const std::string& status = "");
  void finish(const std::string& status = "");

 private:
  std::string label_;
  int64_t total_;
  RunDir* run_;
  double start_, last_print_ = -1e9;
  bool tty_;
};

}  // namespace cbst
