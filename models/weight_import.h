// Mapping external weight files onto our models (DESIGN §5).
//
// Recognised layouts (by their names and shapes):
//   cbst              our own checkpoints: names and shapes as the model's
//   torchvision-vgg16 `features.{0,2,…,28}` + `classifier.{0,3}` → conv1_1…conv5_3, fc6, fc7
//                     (fc6 (4096, 25088) → (4096, 512, 7, 7), fc7 → 1×1); classifier.6 dropped.
//                     Input convention: torchvision (RGB 0–1, ImageNet mean/std).
//   timm-vgg16        timm's vgg16.tv_in1k: `features.*` as torchvision, `pre_logits.fc1/fc2`
//                     (already convolutions) → fc6, fc7; `head.fc` dropped. Convention: torchvision.
//   caffe-vgg16       VGG_ILSVRC_16_layers.caffemodel: `conv1_1.weight` … `fc7.bias`, fc6/fc7
//                     reshaped by element count; fc8 dropped. Convention: caffe (BGR 0–255 − mean).
//                     A Caffe FCN (voc-fcn8s, voc-fcn8s-atonce) has its score layers too; the
//                     at-once net's fixed scale_pool4/scale_pool3 layers mark it.
//   pytorch-fcn       fcn8s*_from_caffe.pth: our FCN names already. Convention: caffe. Its
//                     staged FCN8s (fcn8s_from_caffe.pth) and FCN8sAtOnce have the same names:
//                     the model named (fcn8s-vgg16-staged or fcn8s-vgg16) is assumed, in a note.
//   mxnet-resnet38    ilsvrc-cls_rna-a1_cls1000_ep-0001.params (and CBST's segmentation
//                     checkpoints): `arg:res4b3_branch2a_weight` → `b4_3.conv_branch2a.weight`,
//                     `aux:bn5b2_branch2b1_moving_var` → `b5_2.bn_branch2b1.running_var`,
//                     `linear{C}` → `classifier` (linear1000 dropped). Convention: torchvision.
//   psa-resnet38      jiwoon-ahn/psa's resnet38d .pth: our ResNet-38 names already.
// Layers the file does not cover keep their initialisation and are listed; a mis-shaped
// tensor is an error naming every mismatch. Outside the model's head (head_layers(): FCN's
// score layers, ResNet-38's conv6a and classifier), an uncovered layer is one the network
// was trained with: load_model refuses such a file unless the import may be partial.
#pragma once

#include <map>
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
  std::vector<std::string> not_covered_trunk;  // of those, the names outside the model's head
  std::vector<std::string> notes;          // what was done to the names, for people
};

WeightImport map_weights(const weights::TensorMap& source, const SegmentationModel& model);

// Loads the mapped tensors into the model (shapes checked) and returns the import report.
WeightImport import_weights(const weights::TensorMap& source, SegmentationModel& model);

// The class count of the file's segmentation classifier, 0 when it has none (an ImageNet
// backbone): a cbst checkpoint's metadata, `score_fr.weight` (FCN), `classifier.weight`
// (ours, psa's ResNet-38), or an MXNet `linear{C}_weight` other than ImageNet's linear1000.
// `where` receives the tensor or key it came from.
int64_t classes_in_weights(const weights::TensorMap& source, std::string* where = nullptr);

// The model a cbst checkpoint records in its metadata (`model`, with `num_classes`); empty for
// any other weights file.
std::string checkpoint_model(const std::map<std::string, std::string>& metadata);

// What a command asks for when it loads a model from a file (or none).
struct ModelRequest {
  std::string model = {};        // --model; empty: the one a cbst checkpoint records
  int64_t num_classes = 0;       // --classes; 0: the file's classifier's, else default_classes
  int64_t default_classes = 19;  // the data's class count (16 for SYNTHIA, 19 otherwise)
  bool allow_partial = false;    // --allow-partial: uncovered trained layers keep their init
  // Inference (eval, predict, pseudolabel) needs the head too: without it the predictions
  // are those of a random classifier. Training may start a head from its initialisation.
  bool inference = false;
  uint64_t seed = 0;             // initialisation of what the file does not cover
};

struct LoadedModel {
  std::shared_ptr<SegmentationModel> model;
  std::string input_convention;  // how inputs must be normalised for these weights
  std::string description;       // one line for people: what was loaded and what was assumed
};

// Refuses an import that leaves layers the network was trained with (request.inference: any
// layer) at their random initialisation unless request.allow_partial, naming them and the
// file's unused tensors, on one line.
void check_import_complete(const WeightImport& import, const SegmentationModel& model, const std::string& path,
                           const ModelRequest& request);

// The model a command runs: `path` empty → random initialisation (seeded); a cbst checkpoint
// → its weights (strict; the model and classes it records must agree with the request); any
// other weight file → imported with the mappings above, refused when it leaves trained layers
// uninitialised unless request.allow_partial. Every refusal is one line ending with what to do.
LoadedModel load_model(const std::string& path, const ModelRequest& request);

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
