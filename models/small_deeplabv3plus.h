// small-deeplabv3plus: a DeepLabv3+-style network small enough to train in minutes on two
// CPU cores, for the demo, the tests and CPU-sized adaptation studies (DESIGN §4).
//
//   stem    conv 3×3/2 (3→24) → conv 3×3 (24→32) → max-pool 3×3/2     stride 4
//   layer1  basic residual block 32→32                                stride 4  (the skip)
//   layer2  basic residual block 32→64, first conv stride 2           stride 8
//   layer3  basic residual block 64→96, dilation 2                    stride 8
//   layer4  basic residual block 96→96, dilation 4                    stride 8
//   ASPP    1×1, 3×3 dilation 3, 6, 9 and image pooling (96→64 each), concat → 1×1 (→64), dropout 0.1
//   decoder ASPP ×2 (bilinear) ‖ 1×1 (32→16) of layer1 → 3×3 (80→64)                stride 4
//           ×2 (bilinear) ‖ stem conv 1 (24) → 3×3 (88→32) → 1×1 (→C)                stride 2
//
// Every conv is conv–BN–ReLU without bias (the image-pooling branch, whose BN would see a
// single value per channel, has a bias instead); basic blocks are ResNet's (conv–BN–ReLU–
// conv–BN, + shortcut, ReLU) with a 1×1 conv–BN projection where the shape changes. The
// logits come out at stride 2 (DeepLabv3+'s stride-4 decoder plus one more skip, since the
// thin classes are a pixel or two wide at CPU image sizes); `forward` upsamples them
// bilinearly to the input. The
// dilations of the ASPP are those of DeepLabv3 (6, 12, 18 at stride 16 on 513² crops) scaled
// to our stride 8 and 96–128-pixel-high crops, so the largest still sees most of the
// feature map without sampling only padding.
#pragma once

#include <memory>
#include <vector>

#include "layers/batch_norm2d.h"
#include "layers/conv2d.h"
#include "models/segmentation_model.h"

namespace cbst {

class ConvBn;
class BasicBlock;

class SmallDeepLabV3Plus : public SegmentationModel {
 public:
  explicit SmallDeepLabV3Plus(const ModelOptions& options);
  Tensor logits(const Tensor& x) override;
  std::string name() const override { return "small-deeplabv3plus"; }
  int64_t output_stride() const override { return 2; }
  std::string input_convention() const override { return "torchvision"; }
  void set_frozen_batch_norm(bool frozen) override;

 private:
  std::shared_ptr<ConvBn> stem1_, stem2_;
  std::vector<std::shared_ptr<BasicBlock>> blocks_;
  std::vector<std::shared_ptr<ConvBn>> aspp_;  // 1×1 and the three dilated 3×3
  std::shared_ptr<Conv2d> aspp_pool_;
  std::shared_ptr<ConvBn> aspp_project_, skip_reduce_, decode1_, decode2_;
  std::shared_ptr<Conv2d> classifier_;
  std::vector<std::shared_ptr<BatchNorm2d>> batch_norms_;  // every BN, for set_frozen_batch_norm
};

}  // namespace cbst
