// The cache of target probabilities for one round (DESIGN §7.1): every image's softmax
// probabilities at the network's resolution, kept in host or device memory as f32 or f16
// until the whole set has been predicted, then assembled into one f32 (N, C, h, w) tensor
// for the threshold and label passes. f16 halves the cache (probabilities in [0, 1] keep 11
// significant bits: relative error ≤ 2⁻¹¹; values under 6e-5 lose precision, which cannot
// move a pixel across a threshold of the portions used in practice).
#pragma once

#include <string>
#include <vector>

#include "engine/tensor.h"

namespace cbst {

struct ProbCacheOptions {
  Device device = Device::cpu();  // where the cache lives
  bool half = false;              // f16 storage (round to nearest even)
};
// memory: "host" or "device" (= `compute_device`); precision: "f32" or "f16".
ProbCacheOptions prob_cache_from_name(const std::string& memory, const std::string& precision,
                                      Device compute_device);

class ProbabilityCache {
 public:
  explicit ProbabilityCache(ProbCacheOptions options) : options_(options) {}
  // probs: f32 (1, C, h, w), any device; every entry must have the first one's shape.
  void add(const Tensor& probs);
  // All entries as one f32 (N, C, h, w) tensor on `device`.
  Tensor assemble(Device device) const;
  int64_t size() const { return int64_t(entries_.size()); }
  size_t bytes() const;

 private:
  ProbCacheOptions options_;
  Shape shape_;
  std::vector<Tensor> entries_;  // f32, or u8 holding f16 bit patterns (2 bytes per value)
};

// IEEE binary16 conversions (round to nearest even; overflow to ±inf; NaN kept), on raw
// buffers of `n` values on `device`.
void float_to_half(uint16_t* dst, const float* src, int64_t n, Device device);
void half_to_float(float* dst, const uint16_t* src, int64_t n, Device device);

}  // namespace cbst
