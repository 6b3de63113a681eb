// Mapping external weight files onto our models (DESIGN §5).
//
// Recognised layouts (by their names and shapes):
//   cbst              our own checkpoints: names and shapes as the model's
//   torchvision-vgg16 `features.{0,2,…,28}` + `classifier.{0,3}` → conv1_1…conv5_3, fc6, fc7
//                     (fc6 (4096, 25088) → (4096, 512, 7, 7), fc7 → 1×1); classifier.6 dropped.
//                     Input convention: torchvision (RGB 0–1, ImageNet mean/std).
//   caffe-vgg16       VGG_ILSVRC_16_layers.caffemodel: `conv1_1.weight` … `fc7.bias`, fc6/fc7
//                     reshaped by element count; fc8 dropped. Convention: caffe (BGR 0–255 − mean).
//   pytorch-fcn       fcn8s*_from_caffe.pth: our FCN names already. Convention: caffe.
//   mxnet-resnet38    ilsvrc-cls_rna-a1_cls1000_ep-0001.params (and CBST's segmentation
//                     checkpoints): `arg:res4b3_branch2a_weight` → `b4_3.conv_branch2a.weight`,
//                     `aux:bn5b2_branch2b1_moving_var` → `b5_2.bn_branch2b1.running_var`,
//                     `linear{C}` → `classifier` (linear1000 dropped). Convention: torchvision.
//   psa-resnet38      jiwoon-ahn/psa's resnet38d .pth: our ResNet-38 names already.
// Layers the file does not cover keep their initialisation and are listed; a mis-shaped
// tensor is an error naming every mismatch.
#pragma once

#include <string>
#include <vector>

#include "models/segmentation_model.h"
#include "weights/tensor_map.h"

namespace cbst {

struct WeightImport {
  weights::TensorMap tensors;              // our names, our shapes
  std::string layout;                      // one of the layouts above
  std::string input_convention;            // "caffe" or "torchvision"
  std::vector<std::string> dropped;        // source names with no place in the model
  std::vector<std::string> not_covered;    // model names the file does not provide
  std::vector<std::string> notes;          // what was done to the names, for people
};

WeightImport map_weights(const weights::TensorMap& source, const SegmentationModel& model);

// Loads the mapped tensors into the model (shapes checked) and returns the import report.
WeightImport import_weights(const weights::TensorMap& source, SegmentationModel& model);

// The model's state as a checkpoint map with metadata {model, num_classes, input_convention}.
weights::TensorMap model_checkpoint(const SegmentationModel& model, const std::string& input_convention);
// Builds the named model and loads a checkpoint written by model_checkpoint (strict). When
// `input_convention` is given it receives the convention the checkpoint records (the
// model's own when it records none): inputs must be normalised that way.
std::shared_ptr<SegmentationModel> load_model_checkpoint(const std::string& path,
                                                         const std::string& expected_model = "",
                                                         std::string* input_convention = nullptr);

// MXNet name of one of our ResNet-38 tensors (the inverse mapping; tests and export).
std::string resnet38_mxnet_name(const std::string& ours, int64_t num_classes);

}  // namespace cbst
