// Matching prediction files to samples, and the evaluation loop over them.
#include "data/predictions.h"

#include <cctype>
#include <filesystem>

#include "engine/check.h"

namespace cbst::data {

namespace fs = std::filesystem;

PredictionIndex::PredictionIndex(const std::string& folder) : folder_(folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    CBST_THROW("predictions folder '", folder, "' does not exist or is not a folder; pass --predictions DIR");
  for (auto it = fs::recursive_directory_iterator(folder, fs::directory_options::follow_directory_symlink, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string name = it->path().filename().string();
    if (name.size() < 5 || name.compare(name.size() - 4, 4, ".png") != 0 || name[0] == '.') continue;
    ++files_;
    const std::string base = name.substr(0, name.size() - 4);
    // Every prefix that ends at a separator is a key, plus the whole base name.
    by_key_[base].push_back(it->path().string());
    for (size_t i = 1; i < base.size(); ++i)
      if (base[i] == '_' || base[i] == '-' || base[i] == '.') by_key_[base.substr(0, i)].push_back(it->path().string());
  }
  if (ec) CBST_THROW(folder, ": cannot walk the predictions folder: ", ec.message());
}

std::string PredictionIndex::find(const std::string& stem) const {
  const auto it = by_key_.find(stem);
  if (it == by_key_.end()) return "";
  if (it->second.size() > 1)
    CBST_THROW("several predictions match image '", stem, "' under ", folder_, ": ", it->second[0], " and ",
               it->second[1], "; keep one prediction per image");
  return it->second[0];
}

EvalResult evaluate_predictions(const Dataset& dataset, const PredictionIndex& predictions,
                                const PredictionEvalOptions& options) {
  const Protocol& protocol = options.protocol;
  const LabelMap gt_map(dataset.label_encoding(), protocol.space, LabelRole::ground_truth);
  const LabelMap pred_map(options.prediction_encoding, protocol.space, LabelRole::prediction);
  ConfusionMatrix cm(num_classes(protocol.space));
  std::vector<size_t> labelled;
  for (size_t i = 0; i < dataset.size(); ++i)
    if (!dataset.sample(i).label.empty()) labelled.push_back(i);
  if (labelled.empty())
    CBST_THROW("no ground truth to evaluate against in ", dataset.describe(), "; use a labelled split (e.g. val)");
  // Check that every prediction exists before decoding anything: a typo in the folder should
  // fail in a second, not after half the dataset.
  std::vector<std::string> files(labelled.size());
  size_t missing = 0;
  std::string first_missing;
  for (size_t k = 0; k < labelled.size(); ++k) {
    files[k] = predictions.find(dataset.sample(labelled[k]).stem);
    if (files[k].empty() && missing++ == 0) first_missing = dataset.sample(labelled[k]).stem;
  }
  if (missing > 0)
    CBST_THROW(missing, " of ", labelled.size(), " images have no prediction (first: '", first_missing,
               "'; expected a file named ", first_missing, ".png or ", first_missing,
               "_*.png somewhere under the predictions folder, ", predictions.size(),
               " PNG files found there); check --predictions and --split");
  for (size_t k = 0; k < labelled.size(); ++k) {
    const Sample& s = dataset.sample(labelled[k]);
    const RawLabels gt_raw = read_label_values(s.label);
    const RawLabels pred_raw = read_label_values(files[k]);
    if (gt_raw.width != pred_raw.width || gt_raw.height != pred_raw.height)
      CBST_THROW("prediction and ground truth sizes differ: ", files[k], " is ", pred_raw.width, "x",
                 pred_raw.height, " but ", s.label, " is ", gt_raw.width, "x", gt_raw.height,
                 "; predictions must be written at the label resolution");
    cm.add(gt_map.apply_and_warn(gt_raw, s.label), pred_map.apply_and_warn(pred_raw, files[k]));
    if (options.progress) options.progress(int64_t(k + 1), int64_t(labelled.size()));
  }
  return compute_metrics(cm, protocol, int64_t(labelled.size()));
}

}  // namespace cbst::data
