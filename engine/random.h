// Seeded random numbers. One Generator (seed + counter) drives data order, augmentation,
// dropout and initialisation; values come from Philox (engine/philox.h), so the same seed
// and the same sequence of calls give the same numbers on the CPU and on a GPU.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace cbst {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }
  // Reserves `n` counters and returns the first.
  uint64_t advance(uint64_t n) {
    const uint64_t o = offset_;
    offset_ += n;
    return o;
  }
  // Data-parallel training (engine/dist.h): this process holds slice `index` of `count`
  // equal slices of every batch. advance_batch_slice(n) for the n entries of the local slice
  // returns the counters a single process gives those entries of the whole batch (offset +
  // index·n) and advances past the whole batch (count·n), so masks (dropout) match a
  // single-process run with the global batch. With count 1 it is advance(n).
  void set_batch_slice(int index, int count) {
    slice_index_ = uint64_t(index);
    slice_count_ = uint64_t(count);
  }
  uint64_t advance_batch_slice(uint64_t n) { return advance(slice_count_ * n) + slice_index_ * n; }
  // Host-side draws (data order, crops): uniform in [0, 1) and an integer in [0, n).
  double next_double();
  uint64_t next_below(uint64_t n);

 private:
  uint64_t seed_ = 0;
  uint64_t offset_ = 0;
  uint64_t slice_index_ = 0, slice_count_ = 1;
};

// The process-wide default generator (manual_seed resets it).
Generator& default_generator();
void manual_seed(uint64_t seed);

Tensor rand_uniform(const Shape& shape, double low = 0.0, double high = 1.0,
                    DType dtype = DType::f32, Device device = Device::cpu(),
                    Generator* gen = nullptr);
Tensor randn(const Shape& shape, double mean = 0.0, double stddev = 1.0,
             DType dtype = DType::f32, Device device = Device::cpu(), Generator* gen = nullptr);
// Each element is 1 with probability p, else 0 (f32/f64).
Tensor bernoulli(const Shape& shape, double p, DType dtype = DType::f32,
                 Device device = Device::cpu(), Generator* gen = nullptr);

}  // namespace cbst
