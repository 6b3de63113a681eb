// The learnable toy task of the model tests: two random 24×24 images whose label is which
// third of the image (top, middle, bottom) a pixel is in.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/random.h"
#include "engine/tensor.h"

namespace cbst::testing {

struct ToyBatch {
  Tensor x, labels;
};

inline ToyBatch toy_batch() {
  Generator gen(5);
  const Tensor x = rand_uniform({2, 3, 24, 24}, 0, 1, DType::f32, Device::cpu(), &gen);
  std::vector<uint8_t> lab(2 * 24 * 24);
  for (int n = 0; n < 2; ++n)
    for (int y = 0; y < 24; ++y)
      for (int xx = 0; xx < 24; ++xx) lab[size_t((n * 24 + y) * 24 + xx)] = uint8_t(y / 8);
  return {x, Tensor::from_vector<uint8_t>(lab, {2, 24, 24})};
}

}  // namespace cbst::testing
