// The interface every segmentation network implements, and the registry by name.
//
// `logits(x)` returns class scores at the network's own output resolution (stride 8 for
// ResNet-38, stride 4 for small-fcn, the input size for FCN8s); `forward(x)` returns them
// at the input's height and width (bilinear, align_corners = false, when they differ), which
// is what the loss and prediction use. Self-training caches probabilities at the network's
// resolution (DESIGN §7.1).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/random.h"
#include "layers/module.h"

namespace cbst {

struct ModelOptions {
  int64_t num_classes = 19;
  uint64_t seed = 0;  // initialisation of the layers that pretrained weights do not cover
  // false: skip the random initialisation (the weights are about to be loaded).
  bool initialize = true;
};

// A group of trainable parameters with the learning-rate / weight-decay multipliers of the
// authors' code: weights lr×1 decay×1, biases (and BN β) lr×2 decay×0.
struct ParameterGroupSpec {
  std::string name;
  NamedTensors parameters;
  double lr_mult = 1.0;
  double weight_decay_mult = 1.0;
};

class SegmentationModel : public Module {
 public:
  virtual Tensor logits(const Tensor& x) = 0;  // x: (N, 3, H, W) -> (N, C, h, w)
  Tensor forward(const Tensor& x) override;     // -> (N, C, H, W)

  virtual std::string name() const = 0;
  int64_t num_classes() const { return num_classes_; }
  virtual int64_t output_stride() const = 0;
  // The input normalisation its pretrained weights imply: "caffe" (BGR 0–255 minus mean) or
  // "torchvision" (RGB 0–1, mean/std). See data::Normalization::from_name.
  virtual std::string input_convention() const = 0;
  // Batch-norm statistics frozen (ImageNet running statistics used while training); a no-op
  // for models without batch norm.
  virtual void set_frozen_batch_norm(bool frozen) { (void)frozen; }
  // The segmentation head: the layers an ImageNet backbone does not have and the model
  // initialises itself (FCN's score layers and fixed upsampling, ResNet-38's conv6a and
  // classifier). A backbone's weight file may leave them out; any other layer it leaves out
  // is an error unless the user allows a partial import (models/weight_import.h).
  virtual std::vector<std::string> head_layers() const { return {"classifier"}; }
  // The layer whose output channels are the classes (its weight is (C, ...)).
  virtual std::string classifier_layer() const { return "classifier"; }

  // The parameters that train, split into the groups above; frozen parameters
  // (requires_grad false, e.g. FCN's bilinear upsampling) are left out.
  std::vector<ParameterGroupSpec> parameter_groups() const;

  // The stream of the model's dropout masks; checkpoints save and restore its state so that
  // a resumed run draws the same masks as an uninterrupted one.
  Generator& dropout_generator() { return dropout_rng_; }

 protected:
  int64_t num_classes_ = 0;
  Generator dropout_rng_;
};

std::shared_ptr<SegmentationModel> create_model(const std::string& name,
                                                const ModelOptions& options = {});
std::vector<std::string> model_names();  // "fcn8s-vgg16", "fcn8s-vgg16-staged", "resnet38", "small-deeplabv3plus", "small-fcn"

}  // namespace cbst
