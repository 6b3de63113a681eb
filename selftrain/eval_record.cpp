#include "selftrain/eval_record.h"

#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/check.h"
#include "selftrain/run_dir.h"

namespace cbst {

namespace fs = std::filesystem;

const char* cbst_version() { return CBST_VERSION; }

Json file_identity(const std::string& path) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(path, ec);
  Json j = {{"path", ec ? path : absolute.lexically_normal().string()}};
  const uintmax_t bytes = fs::file_size(path, ec);
  if (ec) return j;
  j["bytes"] = int64_t(bytes);
  const auto written = fs::last_write_time(path, ec);
  if (!ec) {
    const std::time_t t = std::chrono::system_clock::to_time_t(
        std::chrono::time_point_cast<std::chrono::system_clock::duration>(std::chrono::file_clock::to_sys(written)));
    std::tm utc{};
    gmtime_r(&t, &utc);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &utc);
    j["modified"] = buf;
  }
  // One pass in 1 MiB blocks: about a second for a 500 MB ResNet-38 checkpoint.
  std::ifstream in(path, std::ios::binary);
  std::vector<char> block(1 << 20);
  uLong crc = crc32_z(0, nullptr, 0);
  while (in) {
    in.read(block.data(), std::streamsize(block.size()));
    const std::streamsize n = in.gcount();
    if (n > 0) crc = crc32_z(crc, reinterpret_cast<const Bytef*>(block.data()), size_t(n));
  }
  if (in.eof()) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "%08lx", (unsigned long)(crc & 0xffffffffUL));
    j["crc32"] = hex;
  }
  return j;
}

Json eval_record(const data::EvalResult& result, const EvalSource& s) {
  Json j = {{"cbst_version", cbst_version()}, {"time", timestamp_now()}};
  const bool model = s.predictions.empty();
  j["checkpoint"] = s.checkpoint.empty() ? Json() : file_identity(s.checkpoint);
  if (model) {
    j["model"] = s.model;
  } else {
    j["predictions"] = s.predictions;
    j["pred_format"] = s.pred_format;
  }
  if (!s.run.empty()) {
    j["run"] = s.run;
    if (s.round >= 0) j["round"] = s.round;
    if (s.epoch >= 0) j["epoch"] = s.epoch;
  }
  j["data"] = s.data;
  j["split"] = s.split;
  if (!s.list.empty()) j["list"] = s.list;
  if (model) {
    j["scales"] = s.scales;
    j["flip"] = s.flip;
    j["input_scale"] = s.input_scale;
    j["input_convention"] = s.input_convention;
    j["precision"] = s.precision;
  }
  const Json scores = data::to_json(result);  // named: items() refers to it
  for (const auto& [key, value] : scores.items()) j[key] = value;
  return j;
}

}  // namespace cbst
