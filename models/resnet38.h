// ResNet-38 (Wu, Shen, van den Hengel, "Wider or Deeper"), model A1 at output stride 8 with
// the CBST segmentation head (models_weights.md §3.2):
//   conv1a 3×3 (64) → B2 ×3 → B3 ×3 → B4 ×6 (stride 2 each first block: stride 8)
//   → B5 ×3 (dilation 2) → B6 (bottleneck 1-3-1, dilation 4, dropout 0.3)
//   → B7 (1-3-1, dilation 4, dropout 0.5) → bn7 → ReLU
//   → conv6a 3×3 dilation 12 (512, bias) → ReLU → classifier 3×3 dilation 12 (C, bias).
// Pre-activation blocks (BN → ReLU → conv); projection shortcuts (1×1 on the first BN-ReLU
// output) in the first block of each level; BN eps 1.001e-5 as MXNet's ademxapp. Batch norm
// is frozen during adaptation (set_frozen_batch_norm): ImageNet statistics, trainable γ/β.
// Names follow the PyTorch port (jiwoon-ahn/psa): conv1a, b2, b2_1, …, b7, bn7, with
// bn_branch2a / conv_branch2a / bn_branch2b1 / conv_branch2b1 / … / conv_branch1 inside.
#pragma once

#include "layers/batch_norm2d.h"
#include "layers/conv2d.h"
#include "models/segmentation_model.h"

namespace cbst {

class ResBlock38;

class ResNet38 : public SegmentationModel {
 public:
  explicit ResNet38(const ModelOptions& options);
  Tensor logits(const Tensor& x) override;
  std::string name() const override { return "resnet38"; }
  int64_t output_stride() const override { return 8; }
  std::string input_convention() const override { return "torchvision"; }
  void set_frozen_batch_norm(bool frozen) override;
  std::vector<std::string> head_layers() const override { return {"conv6a", "classifier"}; }

  // The trunk up to relu7 (N, 4096, H/8, W/8).
  Tensor features(const Tensor& x);

 private:
  std::shared_ptr<Conv2d> conv1a_;
  std::vector<std::shared_ptr<ResBlock38>> blocks_;
  std::shared_ptr<BatchNorm2d> bn7_;
  std::shared_ptr<Conv2d> conv6a_, classifier_;
};

}  // namespace cbst
