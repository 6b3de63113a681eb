// Inference without ground truth (`cbst predict`, issue 12): a model's labels for every image
// of a dataset, written for people and for benchmark servers.
//
// For each image (normalised for the model's input convention, predicted with test scales
// and flips at the image's own resolution, selftrain/inference.h), under OUT:
//   labelIds/<stem>.png       Cityscapes labelIds, grey (what the Cityscapes test server and
//                             `cbst eval --predictions OUT/labelIds` read)
//   trainIds/<stem>.png       the model's class ids, grey (255 nowhere: every pixel is predicted)
//   color/<stem>_color.png    the Cityscapes palette
//   overlay/<stem>_overlay.png  the image blended with the palette colours
// Each file is written atomically; a later run over the same OUT replaces files of the same
// names and leaves others alone.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "data/dataset.h"
#include "engine/dtype.h"
#include "models/segmentation_model.h"
#include "selftrain/inference.h"

namespace cbst {

struct PredictOptions {
  std::string out;                    // the output folder (created)
  InferenceOptions inference = InferenceOptions();  // scales and flip; the size is the image's
  double input_scale = 1.0;           // resize factor of the input images
  Device device = Device::cpu();
  std::string input_convention = {};  // "caffe" / "torchvision"; empty: the model's own
  bool label_ids = true, train_ids = true, color = true, overlay = true;
  double overlay_alpha = 0.5;         // weight of the palette colour in the overlay
  int64_t limit = -1;                 // the first K images only; -1: all
  std::function<void(int64_t, int64_t)> progress = {};
};

struct PredictSummary {
  int64_t images = 0;
  std::vector<int64_t> class_pixels;  // predicted pixels per class id, over all images
};

PredictSummary predict_dataset(SegmentationModel& model, const data::Dataset& dataset, const PredictOptions& options);

// The image blended with colours: round((1 − α)·image + α·colour) per channel.
data::Image blend_overlay(const data::Image& image, const data::Image& colour, double alpha);

}  // namespace cbst
