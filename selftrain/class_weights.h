// Class-balanced cross-entropy weights (`--class-weights balanced`).
//
// From the pixel frequency f_c of each class in a set of label maps (ignore excluded), the
// weight is ENet's w_c = 1 / ln(1.02 + f_c) (Paszke et al. 2016): bounded by 1/ln 1.02 ≈ 50
// for a class that is almost absent, near 1/ln 2 ≈ 1.4 for one covering half the pixels,
// so rare classes count more without the unbounded 1/f of inverse-frequency weights. The
// weights are scaled so that Σ_c f_c w_c = 1 (a label map drawn from these frequencies
// keeps the loss scale of plain cross-entropy); a class with no pixel gets the bound.
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "engine/tensor.h"

namespace cbst {

// Pixels per class (size num_classes) over every labelled sample of the datasets, read
// through their own label encodings into `space`.
std::vector<int64_t> class_pixel_counts(const std::vector<data::Dataset>& datasets, data::ClassSpace space);

// The weights above as an f32 tensor (C) on the CPU; throws when there is no labelled pixel.
Tensor balanced_class_weights(const std::vector<int64_t>& counts);

// "none" → an undefined tensor; "balanced" → balanced_class_weights of the datasets; else throws.
Tensor class_weights_for(const std::string& mode, const std::vector<data::Dataset>& datasets,
                         data::ClassSpace space, Device device);

}  // namespace cbst
