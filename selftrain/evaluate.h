// Evaluating a segmentation model on a labelled dataset (DESIGN §8 `cbst eval --model`).
//
// For every labelled sample: the image is normalised for the model's input convention
// (data::Normalization), predicted with test scales and flips (selftrain/inference.h) at the
// label resolution, and the argmax is compared with the ground truth in one confusion matrix
// over the whole dataset (data/evaluation.h: dataset-level IoU, absent classes count as 0).
//
// Class spaces: the model predicts ids of class_space_for(num_classes) (19 → Cityscapes
// trainIds, 16 → CBST's SYNTHIA space, 13 → NTHU). When the protocol's space is another one,
// predictions go through the same LabelMap as a folder of predicted trainIds would (e.g. a
// 19-class model on NTHU merges pole/fence/wall into building); a class the protocol lacks
// becomes a miss.
//
// input_scale resizes the image before inference. It is folded into the test scales (the
// model sees the image resized by input_scale·s for each s), so the image is interpolated
// once per run; the averaged probabilities are interpolated to the label resolution.
//
// Saved predictions (save_predictions = DIR): DIR/labelIds/<stem>.png (Cityscapes labelIds,
// `cbst eval --predictions DIR/labelIds` scores them again; or the model's own class ids in
// DIR/trainIds/ with save_train_ids) and DIR/color/<stem>_color.png (Cityscapes palette).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "data/dataset.h"
#include "data/evaluation.h"
#include "data/label_map.h"
#include "engine/dtype.h"
#include "models/segmentation_model.h"
#include "selftrain/inference.h"

namespace cbst {

struct EvaluateOptions {
  data::Protocol protocol = data::protocol_from_name("19");
  // Test scales and flip; the output size is always the label resolution (out_* ignored).
  // (Value-initialised with "()": with "{}" GCC 12 warns -Wmaybe-uninitialized, wrongly, on
  // designated initialisers that leave this member out.)
  InferenceOptions inference = InferenceOptions();
  double input_scale = 1.0;           // resize factor of the input images
  Device device = Device::cpu();      // the model is moved there (and left there) unless it is there
  std::string input_convention = {};  // "caffe" / "torchvision"; empty: the model's own
  std::string save_predictions = {};  // folder for label and colour PNGs; empty: none
  int64_t save_limit = -1;            // save the first K labelled images only; -1: all
  bool save_train_ids = false;        // save the model's class ids instead of labelIds
  // Called after each image with (done, total); may be empty.
  std::function<void(int64_t, int64_t)> progress = {};
};

// One confusion matrix over every labelled sample of `dataset`; throws when none is labelled.
data::EvalResult evaluate_model(SegmentationModel& model, const data::Dataset& dataset,
                                const EvaluateOptions& options = {});

// The model's class ids mapped to Cityscapes labelIds (255 and unknown ids -> 0, "unlabeled").
data::Labels class_ids_to_label_ids(const data::Labels& ids, data::ClassSpace space);

}  // namespace cbst
