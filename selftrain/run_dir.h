// The run folder (DESIGN §8): config.toml, log.txt, metrics.jsonl, checkpoints/, rounds/,
// eval/, summary.json, report.html. Every file is written atomically (temp + rename), so a
// killed run never leaves a half-written file; metrics.jsonl is rewritten whole from memory.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace cbst {

// A small JSON object builder for the run's files (numbers printed with full precision).
class JsonObject {
 public:
  JsonObject& add(const std::string& key, double value);
  JsonObject& add(const std::string& key, int64_t value);
  JsonObject& add(const std::string& key, int value) { return add(key, int64_t(value)); }
  JsonObject& add(const std::string& key, const std::string& value);
  JsonObject& add(const std::string& key, const char* value) { return add(key, std::string(value)); }
  JsonObject& add(const std::string& key, const std::vector<double>& values);
  JsonObject& add(const std::string& key, const std::vector<int64_t>& values);
  JsonObject& add(const std::string& key, const std::vector<std::string>& values);
  JsonObject& add_raw(const std::string& key, const std::string& json);
  std::string str() const { return "{" + body_ + "}"; }

 private:
  void key(const std::string& k);
  std::string body_;
};
std::string json_number(double v);  // "null" for NaN/Inf (JSON has no such numbers)

class RunDir {
 public:
  // Creates `path` (and parents). Without `resume`, a folder holding a previous run is an
  // error; with it, the folder must hold one (checkpoints/latest).
  RunDir(const std::string& path, bool resume);
  // A run that fails before started() (bad data, model or options: validation) leaves no
  // folder behind when this object created it; from started() on, the folder stays for
  // --resume and for its log.
  ~RunDir();
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;
  void started() { started_ = true; }

  const std::string& path() const { return path_; }
  std::string file(const std::string& relative) const;  // path/relative, parents created

  // A line to stdout and log.txt (appended, flushed).
  void log(const std::string& line);
  // One JSON object per line in metrics.jsonl; `round` lets resume drop lines of a round
  // that did not finish.
  void metric(const JsonObject& object, int64_t round);
  void drop_metrics_from_round(int64_t round);
  void write_text(const std::string& relative, const std::string& text) const;
  bool resuming() const { return resume_; }

 private:
  void flush_metrics() const;
  std::string path_;
  bool resume_;
  bool created_ = false;   // this object made the folder
  bool started_ = false;
  int unwinding_at_start_ = 0;  // std::uncaught_exceptions() when constructed
  std::vector<std::pair<int64_t, std::string>> metrics_;
  FILE* log_ = nullptr;
};

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
