// Spatial priors for CBST-SP (Zou et al., ECCV 2018, §4.4; DESIGN.md §7 item 5).
//
// q_n(c), for class c and a cell n of an H×W grid, is the frequency of class c at n over the
// source labels, smoothed by a Gaussian and normalised per class:
//
//   1. counts   every label map (class ids, 255 = ignore) is resized to the grid by nearest
//               neighbour, src = ⌊dst·in/out⌋ in exact integer arithmetic (the rule of
//               torch.nn.functional.interpolate(mode="nearest")), so maps of any size count
//               alike; count_n(c) = number of maps whose resized label at n is c. Ignore
//               pixels count for no class.
//   2. smooth   the paper's 70×70 Gaussian is given at full (image) resolution; on the grid
//               it is scaled per axis by s_y = H / image_height, s_x = W / image_width:
//                 σ_y = σ·s_y,  R_y = ⌊(support/2)·s_y⌋   (and likewise for x),
//               taps w_k ∝ exp(−k²/(2σ²)) for |k| ≤ R, normalised to Σ_k w_k = 1. The 2-D
//               kernel is the product of the two axes, applied as two 1-D passes (rows, then
//               columns). Default σ = 70/6, so the ±35 px support is ±3σ. σ = 0 or R = 0 on an
//               axis means no smoothing along it.
//               Border: zero padding. Cells outside the grid hold no counts and the kernel
//               is *not* renormalised at the border, so mass smoothed past the edge is lost
//               before step 3 — the same as smoothing a full-resolution count image whose
//               surroundings are empty, and the choice of the reference code
//               (reference/cbst_reference.md, "Spatial priors").
//   3. normalise  q_n(c) = smooth_n(c) / Σ_m smooth_m(c), so Σ_n q_n(c) = 1 per class; a
//               class never seen gets the uniform map 1/(H·W).
//
// image_height/width: the full resolution σ and support refer to. 0 (default) means the mean
// size of the label maps added (GTA5: 1052×1914), which keeps the result independent of the
// order in which maps arrive.
//
// The prior is for *selection* only (s_n(c) = q_n(c)·p_n(c) in selftrain/pseudo_labels.h,
// which interpolates it bilinearly to the label resolution); it never enters the loss.
// Counts are exact integers and smoothing runs in double, so the result does not depend on
// the number of threads.
//
// File format: safetensors with one tensor `prior` f32 (C, H, W) and metadata num_classes,
// grid ("HxW"), sigma, support (full-resolution px), image_size ("HxW"), images, source,
// class_space.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "data/image.h"
#include "engine/tensor.h"

namespace cbst {

constexpr double kSpatialPriorSupport = 70.0;                   // full-resolution px (paper)
constexpr double kSpatialPriorSigma = kSpatialPriorSupport / 6;  // support = ±3σ

struct SpatialPriorOptions {
  int64_t height = 0;  // the grid, H ≥ 1
  int64_t width = 0;   // W ≥ 1
  double sigma = kSpatialPriorSigma;      // full-resolution px, ≥ 0
  double support = kSpatialPriorSupport;  // full-resolution px, ≥ 0 (the kernel's full width)
  int num_classes = 19;                   // C in [1, 255]; label ids ≥ C (other than 255) are errors
  int64_t image_height = 0;               // full resolution; 0: mean of the maps added
  int64_t image_width = 0;
  // compute_spatial_prior only:
  data::ClassSpace class_space = data::ClassSpace::cityscapes19;  // must have num_classes classes
  int threads = 0;  // label-decoding threads; 0: hardware concurrency
  // Called after each label map (from any thread, never concurrently): (done, total).
  std::function<void(size_t done, size_t total)> progress = {};
};

// The 1-D kernel along one axis: taps −R..R (2R + 1 values summing to 1), as described above.
// grid: cells along the axis; image: full-resolution pixels along it.
std::vector<double> spatial_prior_kernel(double sigma, double support, int64_t grid, double image);

// Feed label maps one at a time, then finalise. Copyable and mergeable, so that threads can
// each count a share of a dataset.
class SpatialPriorAccumulator {
 public:
  explicit SpatialPriorAccumulator(const SpatialPriorOptions& options);

  // labels: class ids in [0, C) or 255, any size (resized to the grid by nearest neighbour).
  void add(const data::Labels& labels);
  // Adds another accumulator's counts (same grid and class count).
  void merge(const SpatialPriorAccumulator& other);

  // f32 (C, H, W) on the CPU. Does not consume the counts.
  Tensor finalize() const;

  size_t images() const { return images_; }
  // Full-resolution pixels of each class over the maps added (before resizing).
  const std::vector<int64_t>& pixels_seen() const { return pixels_seen_; }
  // Grid cells counted for each class (after resizing).
  std::vector<int64_t> grid_counts() const;
  // The full resolution σ refers to: the options' or the mean of the maps added ({0, 0}
  // before any map). {height, width}.
  std::pair<double, double> image_size() const;
  const SpatialPriorOptions& options() const { return options_; }

 private:
  SpatialPriorOptions options_;
  std::vector<uint32_t> counts_;  // C × H × W (a source set has < 2^32 maps)
  std::vector<int64_t> pixels_seen_;
  size_t images_ = 0;
  int64_t sum_height_ = 0, sum_width_ = 0;
};

// Counts every labelled sample of `source`, mapped to options.class_space (which must have
// options.num_classes classes), on options.threads threads. Throws when the dataset has no
// samples or an unlabelled one.
struct SpatialPriorResult {
  Tensor prior;                      // f32 (C, H, W), cpu
  std::vector<int64_t> pixels_seen;  // per class, full resolution
  size_t images = 0;
  double image_height = 0, image_width = 0;  // what σ referred to
};
SpatialPriorResult compute_spatial_prior_with_stats(const data::Dataset& source,
                                                    const SpatialPriorOptions& options);
Tensor compute_spatial_prior(const data::Dataset& source, const SpatialPriorOptions& options);

// ---- files

struct SpatialPriorMetadata {
  double sigma = kSpatialPriorSigma;
  double support = kSpatialPriorSupport;
  double image_height = 0, image_width = 0;
  int64_t images = 0;
  std::string source;       // e.g. the dataset spec "gta5=/data/GTA5"
  std::string class_space;  // "cityscapes19", ...; empty when unknown
};

struct SpatialPrior {
  Tensor prior;  // f32 (C, H, W), cpu
  SpatialPriorMetadata metadata;
};

// prior: f32 (C, H, W), any device. num_classes and grid come from its shape. Atomic write.
void save_spatial_prior(const std::string& path, const Tensor& prior,
                        const SpatialPriorMetadata& metadata = {});
// Throws naming the file when it has no `prior` tensor, when that is not rank 3 (C, H, W)
// with 1 ≤ C ≤ 255, or holds negative or non-finite values. Other float dtypes are converted
// to f32; metadata missing from the file keeps its defaults.
SpatialPrior load_spatial_prior(const std::string& path);

}  // namespace cbst
