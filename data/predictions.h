// Evaluating a folder of predicted label PNGs against a dataset's ground truth.
//
// Predictions are found by image stem anywhere under the folder, as cityscapesScripts does:
// the file for stem S is named S.png or S<sep>....png with <sep> one of "_-." (so
// "frankfurt_000000_000294_leftImg8bit.png" matches stem "frankfurt_000000_000294", and
// "00001_pred.png" matches "00001" but "000010.png" does not). Exactly one match is required.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/evaluation.h"

namespace cbst::data {

class PredictionIndex {
 public:
  explicit PredictionIndex(const std::string& folder);  // walks the folder once
  size_t size() const { return files_; }
  // The prediction file for `stem`; "" when none. Throws when several files match.
  std::string find(const std::string& stem) const;

 private:
  std::string folder_;
  size_t files_ = 0;
  std::map<std::string, std::vector<std::string>> by_key_;
};

struct PredictionEvalOptions {
  LabelEncoding prediction_encoding = LabelEncoding::cityscapes_ids;  // --pred-format
  Protocol protocol = protocol_from_name("19");
  // Called after each image with (done, total); may be empty.
  std::function<void(int64_t, int64_t)> progress = {};
};

// One confusion matrix over every labelled sample of `dataset`. Throws (naming the files)
// for a missing prediction, a size mismatch or an unreadable file.
EvalResult evaluate_predictions(const Dataset& dataset, const PredictionIndex& predictions,
                                const PredictionEvalOptions& options);

}  // namespace cbst::data
