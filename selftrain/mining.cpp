#include "selftrain/mining.h"

#include <algorithm>
#include <numeric>

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
    int64_t k = std::min<int64_t>(count[size_t(c)] - 1, int64_t(u_pixel * double(count[size_t(c)])));
    for (size_t i = 0; i < labels.ids.size(); ++i)
      if (labels.ids[i] == c && k-- == 0) {
        cx = int(int64_t(i) % labels.width);
        cy = int(int64_t(i) / labels.width);
        return true;
      }
    return false;
  };
}

}  // namespace cbst
