#include "selftrain/class_weights.h"

#include <cmath>

#include "engine/check.h"

namespace cbst {

std::vector<int64_t> class_pixel_counts(const std::vector<data::Dataset>& datasets, data::ClassSpace space) {
  const int classes = data::num_classes(space);
  std::vector<int64_t> counts(size_t(classes), 0);
  for (const data::Dataset& d : datasets) {
    const data::LabelMap map = d.label_map(space);
    for (size_t i = 0; i < d.size(); ++i) {
      if (d.sample(i).label.empty()) continue;
      const data::Labels labels = map.apply(d.read_raw_labels(i));
      for (uint8_t id : labels.ids)
        if (id < classes) ++counts[id];
    }
  }
  return counts;
}

Tensor balanced_class_weights(const std::vector<int64_t>& counts) {
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  if (!(total > 0)) CBST_THROW("balanced class weights: the training labels hold no labelled pixel");
  std::vector<double> w(counts.size());
  double mean = 0;  // Σ f_c w_c
  for (size_t c = 0; c < counts.size(); ++c) {
    const double f = double(counts[c]) / double(total);
    w[c] = 1.0 / std::log(1.02 + f);
    mean += f * w[c];
  }
  Tensor t = Tensor::empty({int64_t(counts.size())});
  float* p = t.data<float>();
  for (size_t c = 0; c < counts.size(); ++c) p[c] = float(w[c] / mean);
  return t;
}

Tensor class_weights_for(const std::string& mode, const std::vector<data::Dataset>& datasets,
                         data::ClassSpace space, Device device) {
  if (mode == "none") return Tensor();
  if (!(mode == "balanced")) CBST_THROW("--class-weights '", mode, "' is not none or balanced");
  return balanced_class_weights(class_pixel_counts(datasets, space)).to(device);
}

}  // namespace cbst
