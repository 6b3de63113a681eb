// What an evaluation's JSON (`cbst eval --json`, a run's eval/*.json) records beside the
// scores of data::to_json: what was evaluated, on which data, how, and by which cbst, so that
// a number can be traced back to its weights. The README's "Evaluation JSON" lists the fields.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/evaluation.h"
#include "engine/json.h"

namespace cbst {

// The version of cbst that wrote a file (CMake's project version).
const char* cbst_version();

// A file as it was when evaluated: {"path", "bytes", "modified" (ISO 8601 UTC), "crc32" (zlib's
// CRC-32 of its bytes, 8 hex digits: tells two files apart, not a cryptographic hash)}.
Json file_identity(const std::string& path);

struct EvalSource {
  std::string checkpoint = {};   // the weights file evaluated; empty: none (predictions, a run's weights)
  std::string model = {};
  std::string predictions = {};  // folder of predicted label maps; empty: a model's predictions
  std::string pred_format = {};
  std::string run = {};          // a run's evaluation: its folder, and after which round or epoch
  int64_t round = -1;            // -1: not a self-training round (0: the starting model)
  int64_t epoch = -1;            // -1: not an epoch of `cbst train`
  std::string data = {};         // KIND=PATH
  std::string split = {};
  std::string list = {};
  std::vector<double> scales = {};
  bool flip = false;
  double input_scale = 1.0;
  std::string input_convention = {};
  std::string precision = "f32";  // the model's precision policy (layers/module.h)
};

// {"cbst_version", "time", "checkpoint": file_identity or null, "model", "predictions",
//  "pred_format", "run", "round"/"epoch", "data", "split", "list", "scales", "flip",
//  "input_scale", "input_convention", "precision", ...data::to_json(result)}; members that do not apply
// are left out (predictions for a model, scales for a folder of predictions).
Json eval_record(const data::EvalResult& result, const EvalSource& source);

}  // namespace cbst
