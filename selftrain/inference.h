// Inference with horizontal flips and test scales (DESIGN §7.1 and §7.9).
//
// For images x (N, 3, H, W) and each test scale s, the model sees x_s = x bilinearly resized
// to round(H·s) × round(W·s) (align_corners = false); with `flip` also the mirrored input.
// Each run r gives softmax probabilities at the network's own resolution,
//   p_r = softmax(logits(x_s))            or   flip(softmax(logits(flip(x_s))))   (flip on W),
// which are bilinearly interpolated to the output size (Ho, Wo) and averaged:
//   P = (1 / R) Σ_r resize(p_r, Ho × Wo).
//
// Why probabilities and not logits: the authors' MXNet code averages the *softmax* of an
// image and of its mirror (reference (f)), and DESIGN §7.9 follows it for scales too; the
// paper's PyTorch port averages logits instead. Interpolating each run's probabilities
// (rather than its logits) to the common size keeps every run a probability map, so P sums
// to 1 at every pixel, and at the default output size a single scale-1 run is exactly the
// softmax of `model.logits(x)` that self-training caches. Note that this differs from
// softmax(model.forward(x)), which interpolates logits, whenever the network's output
// resolution is not the input's.
//
// The model runs without autograd and in eval mode (batch-norm running statistics, no
// dropout); its previous train/eval mode is restored afterwards, also on error. Images must be
// f32, already normalised for the model's input convention, and on the model's device; the
// result lives there too.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "engine/tensor.h"
#include "models/segmentation_model.h"

namespace cbst {

struct InferenceOptions {
  std::vector<double> scales = {1.0};  // test scales; the paper's MST: {0.5, 0.75, 1.0}
  bool flip = false;                   // also average the horizontally mirrored input
  // Output size; 0 means the network's output resolution at scale 1 (predict_probabilities)
  // or the input resolution (predict_labels).
  int64_t out_height = 0;
  int64_t out_width = 0;
};

// Test scales as a person writes them and `--scales` reads them: "0.9,1,1.2".
std::string scales_text(const std::vector<double>& scales);

// The size of `model.logits(x)` for an H × W input: ⌈H / stride⌉ × ⌈W / stride⌉, which holds
// for every registered model (ceil-mode pooling, stride-2 convolutions with padding 1, FCN's
// crop back to the input).
std::pair<int64_t, int64_t> network_output_size(const SegmentationModel& model, int64_t height,
                                                int64_t width);

// Averaged softmax probabilities. images: (N, 3, H, W) f32 -> (N, C, Ho, Wo) f32.
Tensor predict_probabilities(SegmentationModel& model, const Tensor& images,
                             const InferenceOptions& options = {});

// argmax over classes of predict_probabilities (lowest class on ties), at the input
// resolution unless options give another. images: (N, 3, H, W) f32 -> (N, Ho, Wo) u8.
Tensor predict_labels(SegmentationModel& model, const Tensor& images, const InferenceOptions& options = {});

}  // namespace cbst
