// small-fcn: a small fully-convolutional net that trains in minutes on two CPU cores, for
// the demo and the tests (DESIGN §4). Three stages of two 3×3 conv–BN–ReLU, max-pooling
// between the first two, a dilated third stage (dilations 2 and 4) for context at output
// stride 4, dropout, a 1×1 classifier, and bilinear upsampling to the input size (forward).
#pragma once

#include "layers/batch_norm2d.h"
#include "layers/conv2d.h"
#include "models/segmentation_model.h"

namespace cbst {

class SmallFcn : public SegmentationModel {
 public:
  explicit SmallFcn(const ModelOptions& options, int64_t width = 16);
  Tensor logits(const Tensor& x) override;
  std::string name() const override { return "small-fcn"; }
  int64_t output_stride() const override { return 4; }
  std::string input_convention() const override { return "torchvision"; }
  void set_frozen_batch_norm(bool frozen) override;

 private:
  struct Unit {
    std::shared_ptr<Conv2d> conv;
    std::shared_ptr<BatchNorm2d> bn;
  };
  std::vector<Unit> units_;
  std::shared_ptr<Conv2d> classifier_;
};

}  // namespace cbst
