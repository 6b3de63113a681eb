// FCN8s-VGG16 (Long, Shelhamer, Darrell) exactly as the Caffe reference (models_weights.md
// §1): VGG16 convolutions with pad 100 on conv1_1, max-pooling in ceil mode, fc6 as a 7×7
// convolution (4096) and fc7 as 1×1 (4096) with dropout 0.5, score layers, upscore ×2
// (4×4/2), ×2, ×8 (16×16/8) transposed convolutions with fixed bilinear weights and no bias,
// and skip crops at offsets 5, 9 and 31. The output has the input's size for any input.
// Names follow the PyTorch port (`conv1_1.weight`, `fc6.weight`, `score_pool4.bias`,
// `upscore8.weight`) so its checkpoints load by name.
//
// Two variants that the names cannot tell apart (§1.2):
//   at-once  `fcn8s-vgg16`: voc-fcn8s-atonce, pytorch-fcn's FCN8sAtOnce
//            (fcn8s-atonce_from_caffe.pth): the skips are scaled before their score layers,
//            score_pool4(0.01·pool4) and score_pool3(0.0001·pool3), fixed Scale layers.
//   staged   `fcn8s-vgg16-staged`: voc-fcn8s (trained FCN32s → FCN16s → FCN8s), pytorch-fcn's
//            FCN8s (fcn8s_from_caffe.pth): score_pool4(pool4), score_pool3(pool3), unscaled.
// Weights of one variant in the other give skip contributions 100× and 10⁴× off.
#pragma once

#include "layers/conv2d.h"
#include "layers/conv_transpose2d.h"
#include "models/segmentation_model.h"

namespace cbst {

enum class Fcn8sVariant { at_once, staged };

class Fcn8sVgg16 : public SegmentationModel {
 public:
  Fcn8sVgg16(const ModelOptions& options, Fcn8sVariant variant);
  Tensor logits(const Tensor& x) override;
  std::string name() const override;
  int64_t output_stride() const override { return 1; }
  std::string input_convention() const override { return "caffe"; }
  std::vector<std::string> head_layers() const override {
    return {"score_fr", "score_pool4", "score_pool3", "upscore2", "upscore_pool4", "upscore8"};
  }
  std::string classifier_layer() const override { return "score_fr"; }
  Fcn8sVariant variant() const { return variant_; }

 private:
  Fcn8sVariant variant_;
  std::vector<std::shared_ptr<Conv2d>> convs_;  // conv1_1 … conv5_3
  std::shared_ptr<Conv2d> fc6_, fc7_, score_fr_, score_pool4_, score_pool3_;
  std::shared_ptr<ConvTranspose2d> upscore2_, upscore_pool4_, upscore8_;
};

}  // namespace cbst
