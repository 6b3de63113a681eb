// One round's pseudo-labelling over the whole target set (DESIGN §7.1–7.4): probabilities
// of every target image at the network's resolution (averaged over flips/scales) are cached
// in one (N, C, h, w) tensor, thresholds and labels come from selftrain/pseudo_labels.h on
// the model's device, and each label map is written as a PNG of class ids (255 = ignore)
// under rounds/<r>/pseudo/, with colourised previews for the first few images.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "models/segmentation_model.h"
#include "selftrain/crst.h"
#include "selftrain/inference.h"
#include "selftrain/prob_cache.h"
#include "selftrain/pseudo_labels.h"
#include "selftrain/run_dir.h"

namespace cbst {

struct RoundLabelOptions {
  ThresholdPolicy policy = ThresholdPolicy::cbst;
  double portion = 0.2;
  int64_t pool_stride = 1;
  PoolSampling sampling = PoolSampling::pixel_index;
  // > 0: CRST's LRENT with α = lrent_alpha: the label files hold argmax ŷ where its rule keeps
  // the pixel, and RoundLabels::soft_targets the soft labels for training (crst.h).
  double lrent_alpha = 0.0;
  InferenceOptions inference = {};
  std::string input_convention;
  Device device = Device::cpu();
  data::ClassSpace space = data::ClassSpace::cityscapes19;
  int64_t previews = 4;
  ProbCacheOptions cache = {};
  // A diagnostic, for a target with labels: each pixel the rule labels takes its true label
  // instead (void where the truth is void), so a run trains on the pixels its rule chose,
  // every one of them right. The counts below still describe the rule's own labels.
  bool true_labels = false;
};

struct RoundLabels {
  data::Dataset dataset;               // the target images with their pseudo-label files
  std::vector<double> thresholds = {};      // per class
  std::vector<int64_t> pool_sizes = {};     // pixels predicted as each class (pools, after stride)
  std::vector<int64_t> labelled = {};       // pseudo-labelled pixels per class
  std::vector<int64_t> checked = {};        // of those, pixels with valid target ground truth
  std::vector<int64_t> correct = {};        // of those, pixels whose label equals the ground truth
  int64_t pixels = 0;                  // all target pixels
  bool has_ground_truth = false;
  std::vector<std::string> preview_stems = {};
  std::shared_ptr<const LrentTargets> soft_targets = {};  // LRENT only
};

// Where a labelling pass writes: `dir`/<stem>.png and, for the first `previews` images,
// `dir`/<stem>_color.png (the folder is created). `name` labels the progress lines and the
// returned dataset; `run`, when given, also receives the progress in its log.
struct LabelOutput {
  std::string dir;
  std::string name;
  RunDir* run = nullptr;
};

// Pseudo-labels of every image of `target` (also `cbst pseudolabel --checkpoint`). With
// several ranks in dist::world() (data-parallel `cbst adapt`) each rank predicts and writes
// its contiguous share of the images; the thresholds (selftrain/distributed_thresholds.h) and
// counts are those of the whole set, and every rank returns the whole dataset.
RoundLabels label_dataset(SegmentationModel& model, const data::Dataset& target, const Tensor& spatial_prior,
                          const RoundLabelOptions& options, const LabelOutput& output);

// A round of `cbst adapt`: label_dataset into the run's rounds/<round>/pseudo/.
RoundLabels generate_round_labels(SegmentationModel& model, const data::Dataset& target,
                                  const Tensor& spatial_prior, const RoundLabelOptions& options,
                                  RunDir& run, int64_t round);

}  // namespace cbst
