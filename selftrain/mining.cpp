#include "selftrain/mining.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "selftrain/class_weights.h"

namespace cbst {

std::vector<int> rare_classes(const std::vector<int64_t>& predicted, const MiningOptions& o) {
  const int64_t total = std::accumulate(predicted.begin(), predicted.end(), int64_t(0));
  std::vector<int> rare;
  if (total == 0) return rare;
  for (size_t c = 0; c < predicted.size(); ++c)
    if (double(predicted[c]) < o.rare_fraction * double(total)) rare.push_back(int(c));
  if (!rare.empty()) return rare;
  std::vector<int> order(predicted.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return predicted[size_t(a)] < predicted[size_t(b)]; });
  for (int c : order)
    if (predicted[size_t(c)] > 0 && int64_t(rare.size()) < o.fallback_classes) rare.push_back(c);
  return rare;
}

std::function<bool(int64_t, const data::Labels&, data::SampleRng&, int&, int&)> mining_crop_center(
    std::vector<int> rare, int64_t first_target_index, const MiningOptions& o) {
  return [rare = std::move(rare), first_target_index, o](int64_t index, const data::Labels& labels,
                                                         data::SampleRng& rng, int& cx, int& cy) {
    // Every draw happens whether or not it is used, so the stream does not depend on the data.
    const double u_mine = rng.uniform(), u_class = rng.uniform(), u_pixel = rng.uniform();
    if (index < first_target_index || rare.empty() || u_mine >= o.probability) return false;
    std::vector<int64_t> count(256, 0);
    for (uint8_t id : labels.ids) ++count[id];
    std::vector<int> present;
    for (int c : rare)
      if (count[size_t(c)] > 0) present.push_back(c);
    if (present.empty()) return false;
    const int c = present[std::min(present.size() - 1, size_t(u_class * double(present.size())))];
    return data::pixel_of_class(labels, c, u_pixel, cx, cy);
  };
}

std::vector<double> rare_class_weights(const std::vector<int64_t>& class_pixels, double temperature) {
  const int64_t total = std::accumulate(class_pixels.begin(), class_pixels.end(), int64_t(0));
  std::vector<double> weight(class_pixels.size(), 0.0);
  // exp((1 − f)/T) relative to the most frequent class's, so it cannot overflow.
  double f_max = 0;
  for (int64_t n : class_pixels) f_max = std::max(f_max, total ? double(n) / double(total) : 0.0);
  for (size_t c = 0; c < class_pixels.size(); ++c)
    weight[c] = std::exp((f_max - (total ? double(class_pixels[c]) / double(total) : 0.0)) / temperature);
  return weight;
}

std::function<bool(int64_t, const data::Labels&, data::SampleRng&, int&, int&)> rare_class_crop_center(
    const std::vector<int64_t>& class_pixels, int64_t end_index, const RareClassSampling& o) {
  const std::vector<double> weight = rare_class_weights(class_pixels, o.temperature);
  return [weight, end_index, o](int64_t index, const data::Labels& labels, data::SampleRng& rng, int& cx, int& cy) {
    const double u_pick = rng.uniform(), u_class = rng.uniform(), u_pixel = rng.uniform();
    if (index >= end_index || u_pick >= o.probability) return false;
    std::vector<int64_t> count(256, 0);
    for (uint8_t id : labels.ids) ++count[id];
    double sum = 0;
    for (size_t c = 0; c < weight.size(); ++c)
      if (count[c] > 0) sum += weight[c];
    if (sum <= 0) return false;
    int chosen = -1;
    double acc = 0;
    for (size_t c = 0; c < weight.size() && chosen < 0; ++c)
      if (count[c] > 0 && (acc += weight[c]) >= u_class * sum) chosen = int(c);
    if (chosen < 0) return false;
    return data::pixel_of_class(labels, chosen, u_pixel, cx, cy);
  };
}

data::ClassFirstSampling rare_class_first(const data::Dataset& labelled, data::ClassSpace space,
                                          const RareClassSampling& o) {
  const int classes = data::num_classes(space);
  const data::LabelMap map = labelled.label_map(space);
  std::vector<int64_t> pixels(size_t(classes), 0);
  data::ClassFirstSampling out;
  out.probability = o.probability;
  out.end_index = int64_t(labelled.size());
  out.images_with_class.resize(size_t(classes));
  for (size_t i = 0; i < labelled.size(); ++i) {
    if (labelled.sample(i).label.empty()) continue;
    std::vector<int64_t> count(size_t(classes), 0);
    for (uint8_t id : map.apply(labelled.read_raw_labels(i)).ids)
      if (id < classes) ++count[id];
    for (size_t c = 0; c < size_t(classes); ++c)
      if (count[c] > 0) {
        pixels[c] += count[c];
        out.images_with_class[c].push_back(int64_t(i));
      }
  }
  out.class_weight = rare_class_weights(pixels, o.temperature);
  return out;
}

void add_rare_class_sampling(data::LoaderOptions& lo, const data::Dataset& labelled, data::ClassSpace space,
                             double probability, const std::string& draw) {
  if (probability <= 0) return;
  const int64_t end = int64_t(labelled.size());
  if (draw == "class")
    lo.class_first = rare_class_first(labelled, space, {.probability = probability});
  else
    lo.crop_center = combine_crop_centers(
        rare_class_crop_center(class_pixel_counts({labelled}, space), end, {.probability = probability}), end,
        lo.crop_center);
}

CropCenterHook combine_crop_centers(CropCenterHook labelled, int64_t split, CropCenterHook target) {
  if (!labelled) return target;
  if (!target) return labelled;
  return [labelled = std::move(labelled), split, target = std::move(target)](
             int64_t index, const data::Labels& labels, data::SampleRng& rng, int& cx, int& cy) {
    return index < split ? labelled(index, labels, rng, cx, cy) : target(index, labels, rng, cx, cy);
  };
}

}  // namespace cbst
