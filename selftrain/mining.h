// Hard-sample mining (DESIGN §7.8, the authors' "PatchMine"): classes whose predicted share of
// the target pixels is below `rare_fraction` (0.1%) are rare. With probability `probability`
// a target crop is centred on a random pixel of a random rare class present in its
// pseudo-label (falling back to the 3 rarest classes, then to the uniform crop).
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
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

// Rare-class sampling of labelled crops (after Hoyer et al., DAFormer, CVPR 2022, "RCS"),
// drawing the image first: with probability `probability` a crop of a sample with index <
// `end_index` is centred on a random pixel of one class present in its labels, drawn with
// P(c) ∝ exp((1 − f_c) / T) over the present classes, where f_c is the class's pixel
// frequency in the labelled set and T = 0.01 (DAFormer's). The frequent classes are all but
// never drawn; among the rare ones T spreads the choice (f of 0.1% and 0.9%: 0.69 and 0.31).
// A network that never sees a pole in a CPU budget of crops cannot learn one, and unlike a
// weighted loss this leaves the scores' calibration, which CBST's thresholds rely on, close
// to the data's.
struct RareClassSampling {
  double probability = 0.0;  // 0: off
  double temperature = 0.01;
};
std::function<bool(int64_t, const data::Labels&, data::SampleRng&, int&, int&)> rare_class_crop_center(
    const std::vector<int64_t>& class_pixels, int64_t end_index, const RareClassSampling& options);

// The weights above, exp((1 − f_c)/T) up to a common factor, from per-class pixel counts.
std::vector<double> rare_class_weights(const std::vector<int64_t>& class_pixels, double temperature);

// DAFormer's own order of the draws (data::ClassFirstSampling), for a loader whose first
// part is `labelled`: a class first, P(c) ∝ exp((1 − f_c)/T) over the classes `labelled`
// holds, then an image holding it. Image-first (the hook above) favours the rare classes
// that most images hold (on `cbst synth`, traffic lights and signs); class-first gives each
// rare class about the same share of crops, however few images hold it. One pass over the
// labels.
data::ClassFirstSampling rare_class_first(const data::Dataset& labelled, data::ClassSpace space,
                                          const RareClassSampling& options);

// Rare-class sampling of a loader's labelled samples, those of its first part `labelled`,
// drawn as `draw` says: "image" (rare_class_crop_center, combined with a crop_center already
// set for the later samples) or "class" (rare_class_first). Probability 0: left as it is.
void add_rare_class_sampling(data::LoaderOptions& lo, const data::Dataset& labelled, data::ClassSpace space,
                             double probability, const std::string& draw);

// Both hooks in one: samples below `split` go to `labelled`, the others to `target`; either
// may be empty (no re-centring there).
using CropCenterHook = std::function<bool(int64_t, const data::Labels&, data::SampleRng&, int&, int&)>;
CropCenterHook combine_crop_centers(CropCenterHook labelled, int64_t split, CropCenterHook target);

}  // namespace cbst
