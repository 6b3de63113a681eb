// FCN8s-VGG16 (Long, Shelhamer, Darrell), the "at-once" variant, exactly as the Caffe
// reference (models_weights.md §1): VGG16 convolutions with pad 100 on conv1_1, max-pooling
// in ceil mode, fc6 as a 7×7 convolution (4096) and fc7 as 1×1 (4096) with dropout 0.5,
// score layers, upscore ×2 (4×4/2), ×2, ×8 (16×16/8) transposed convolutions with fixed
// bilinear weights and no bias, skip crops at offsets 5, 9 and 31, and the at-once scaling
// of pool4 (×0.01) and pool3 (×0.0001). The output has the input's size for any input of at
// least 32×32. Names follow the PyTorch port (`conv1_1.weight`, `fc6.weight`,
// `score_pool4.bias`, `upscore8.weight`) so its checkpoints load by name.
#pragma once

#include "layers/conv2d.h"
#include "layers/conv_transpose2d.h"
#include "models/segmentation_model.h"

namespace cbst {

class Fcn8sVgg16 : public SegmentationModel {
 public:
  explicit Fcn8sVgg16(const ModelOptions& options);
  Tensor logits(const Tensor& x) override;
  std::string name() const override { return "fcn8s-vgg16"; }
  int64_t output_stride() const override { return 1; }
  std::string input_convention() const override { return "caffe"; }

 private:
  std::vector<std::shared_ptr<Conv2d>> convs_;  // conv1_1 … conv5_3
  std::shared_ptr<Conv2d> fc6_, fc7_, score_fr_, score_pool4_, score_pool3_;
  std::shared_ptr<ConvTranspose2d> upscore2_, upscore_pool4_, upscore8_;
};

}  // namespace cbst
