// AdaBN (Li et al., "Revisiting Batch Normalization for Practical Domain Adaptation", 2016):
// a model's batch-norm statistics re-estimated on another domain's images, every weight kept.
//
// As torch.optim.swa_utils.update_bn: every BatchNorm2d's running statistics are reset and
// become the cumulative average (PyTorch's momentum=None) of the batch statistics the layer
// sees while the model runs in training mode over the dataset's images, in the dataset's order,
// in batches of up to `batch` whole images of one size (an image of another size starts a new
// batch). As in update_bn the whole model runs in training mode, so its dropout is active, with
// masks from the model's dropout generator (models/segmentation_model.h): the same model and
// seed give the same statistics. Frozen layers (ResNet-38 while it adapts) are re-estimated
// too and frozen again.
// No gradients; the model's train/eval mode is restored afterwards, also on error.
//
// What it is for: a source model evaluated with the target's statistics shows how much of a
// self-training run's gain needs no labels at all (docs/demo-runs.md, measurement 8).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "data/dataset.h"
#include "engine/tensor.h"
#include "models/segmentation_model.h"

namespace cbst {

struct BatchNormStatisticsOptions {
  int64_t batch = 4;                  // images per forward pass (the statistics' batch)
  Device device = Device::cpu();      // the model is moved there and left there
  std::string input_convention = {};  // "caffe" / "torchvision"; empty: the model's own
  int64_t limit = -1;                 // the first K images only; -1: all
  // Called after each batch with (images done, images in all); may be empty.
  std::function<void(int64_t, int64_t)> progress = {};
};

struct BatchNormStatisticsSummary {
  int64_t layers = 0;   // batch-norm layers re-estimated
  int64_t images = 0;
  int64_t batches = 0;  // each layer's num_batches_tracked afterwards
};

// The batch-norm layers with running statistics in the model: what AdaBN re-estimates.
int64_t batch_norm_layer_count(Module& model);

// Throws when the model has no batch-norm layer with running statistics, or the dataset no image.
BatchNormStatisticsSummary recompute_batch_norm_statistics(SegmentationModel& model, const data::Dataset& dataset,
                                                           const BatchNormStatisticsOptions& options = {});

}  // namespace cbst
