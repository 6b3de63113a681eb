// Hard-sample mining (DESIGN §7.8, the authors' "PatchMine"): classes whose predicted share of
// the target pixels is below `rare_fraction` (0.1%) are rare. With probability `probability`
// a target crop is centred on a random pixel of a random rare class present in its
// pseudo-label (falling back to the 3 rarest classes, then to the uniform crop).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "data/loader.h"

namespace cbst {

struct MiningOptions {
  double probability = 0.8;
  double rare_fraction = 0.001;
  int64_t fallback_classes = 3;
};

// Rare classes from per-class predicted pixel counts: those under the fraction, or when
// none is, the `fallback_classes` rarest classes that were predicted at all.
std::vector<int> rare_classes(const std::vector<int64_t>& predicted_pixels, const MiningOptions& options);

// A loader crop_center hook mining samples with index ≥ first_target_index.
std::function<bool(int64_t, const data::Labels&, data::SampleRng&, int&, int&)> mining_crop_center(
    std::vector<int> rare, int64_t first_target_index, const MiningOptions& options);

}  // namespace cbst
