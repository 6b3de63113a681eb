// The run folder of `cbst train` and `cbst adapt` (the README's "Run folders" shows the tree):
// config.toml, log.txt, metrics.jsonl, checkpoints/, rounds/ (adapt), eval/, summary.json,
// report.html. Every file is written atomically (temp + rename), so a killed run never leaves
// a half-written file; metrics.jsonl is rewritten whole from memory.
//
// Numbering: epochs and rounds count from 1 everywhere a person or a file sees them (log
// lines, metrics.jsonl, JSON, file names, report); round 0 is the model a self-training run
// starts from. Only the loader's epoch index, which seeds its random draws, counts from 0.
#pragma once

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/json.h"
#include "engine/tensor.h"

namespace cbst {

// A number for log lines, rounded for people: `decimals` digits after the point.
std::string format_fixed(double v, int decimals);

// The current UTC time in ISO 8601: "2025-05-01T12:34:56Z", or with milliseconds
// "2025-05-01T12:34:56.789Z".
std::string timestamp_now(bool milliseconds = false);
// A duration as "mm:ss" or "h:mm:ss"; "--:--" when unknown (NaN, negative).
std::string format_duration(double seconds);

// Memory in use so far: the process's peak resident set (getrusage; always) and, on a CUDA
// device, the caching allocator's peak of live tensors since the process started. MiB.
struct MemoryUse {
  double peak_rss_mib = 0;
  double cuda_peak_mib = -1;  // -1: not on a CUDA device
};
MemoryUse memory_use(Device device);

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

  // A line to stdout and log.txt (appended, flushed), after an ISO 8601 timestamp.
  void log(const std::string& line);
  // One JSON object per line in metrics.jsonl, `{"time": ISO 8601, ...record}`. The record
  // holds its "round" (adapt) or, without one, its "epoch" (train): resume drops the records
  // of the round or epoch that did not finish (drop_metrics_from) by that number.
  void metric(const Json& record);
  void drop_metrics_from(int64_t index);
  // The records of metrics.jsonl whose "event" is `event` ("" : every record), in order.
  std::vector<Json> records(const std::string& event = "") const;
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
// only (an option newer than the run) is not compared. Every key in `may_change` must be one
// of `now`'s (a misspelt one is a defect, reported as an error).
std::vector<std::string> check_resume_options(const std::string& started, const std::string& now,
                                              const std::set<std::string>& may_change);

// Progress with ETA: a bar redrawn in place on a terminal, plain lines (every ~10 s and at
// the end) otherwise, unless `plain_lines` is off (the training loop logs its own lines).
// finish() logs one line to the run when there is one. On the ranks other than 0 of a
// data-parallel run (engine/dist.h) it prints nothing.
class Progress {
 public:
  Progress(std::string label, int64_t total, RunDir* run = nullptr, bool plain_lines = true);
  void update(int64_t done, const std::string& status = "");
  void finish(const std::string& status = "");

 private:
  std::string label_;
  int64_t total_;
  RunDir* run_;
  bool plain_lines_;
  double start_, last_print_ = -1e9;
  bool quiet_;  // a data-parallel rank other than 0
  bool tty_;
};

// The time left in a whole run (not one epoch): the steps left at the mean step time so far,
// plus, for each epoch or round left, the mean time the finished ones spent outside their
// steps (evaluation, pseudo-labelling, checkpoints). An estimate; NaN before the first step.
class RunEta {
 public:
  // total_steps, total_units: of the whole run; done_*: before this process (resume).
  RunEta(int64_t total_steps, int64_t done_steps, int64_t total_units, int64_t done_units);
  void step_done(double seconds);
  void unit_done();
  int64_t total_steps() const { return total_steps_; }
  double seconds_left() const;

 private:
  int64_t total_steps_, steps_left_, units_left_;
  int64_t steps_ = 0, units_ = 0;  // done by this process
  double step_seconds_ = 0, start_;
};

}  // namespace cbst
