#include "models/resnet38.h"

#include "engine/ops.h"
#include "layers/dropout.h"

namespace cbst {

constexpr double kBnEps = 1.001e-5;  // ademxapp's BN epsilon

struct BlockSpec {
  std::string name;
  int64_t in;
  std::vector<int64_t> filters;  // one per conv of branch 2
  int64_t stride;
  int64_t dilation_2a;  // of the first branch-2 conv
  int64_t dilation_2b;  // of the following 3×3 conv(s)
  bool projection;
  double dropout;  // before the last conv of branch 2 (levels 6 and 7)
};

// One pre-activation residual block: bn→relu→conv chains with a projection (1×1 conv of the
// first bn→relu output) or identity shortcut, output = shortcut + branch 2.
class ResBlock38 : public Module {
 public:
  ResBlock38(const BlockSpec& spec, Generator& gen, bool init) : spec_(spec) {
    int64_t in = spec.in;
    for (size_t i = 0; i < spec.filters.size(); ++i) {
      const std::string suffix = i == 0 ? "2a" : "2b" + std::to_string(i);
      // Bottleneck blocks (three convs) are 1×1 – 3×3 – 1×1; the others 3×3 – 3×3.
      const bool three_by_three = spec.filters.size() == 2 || i == 1;
      const int64_t dilation = i == 0 ? spec.dilation_2a : spec.dilation_2b;
      bns_.push_back(register_module("bn_branch" + suffix, std::make_shared<BatchNorm2d>(
          BatchNorm2dParams{.num_features = in, .eps = kBnEps})));
      auto conv = register_module("conv_branch" + suffix, std::make_shared<Conv2d>(Conv2dParams{
          .in_channels = in, .out_channels = spec.filters[i], .kernel = three_by_three ? 3 : 1,
          .pad = three_by_three ? dilation : 0, .dilation = three_by_three ? dilation : 1,
          .stride = i == 0 ? spec.stride : 1, .bias = false, .initialize = false}));
      if (init) kaiming_normal_(conv->weight(), &gen);
      convs_.push_back(conv);
      in = spec.filters[i];
    }
    if (spec.projection) {
      shortcut_ = register_module("conv_branch1", std::make_shared<Conv2d>(Conv2dParams{
          .in_channels = spec.in, .out_channels = spec.filters.back(), .kernel = 1, .pad = 0,
          .stride = spec.stride, .bias = false, .initialize = false}));
      if (init) kaiming_normal_(shortcut_->weight(), &gen);
    }
  }

  Tensor forward_block(const Tensor& x, Generator& dropout_rng) {
    const Tensor a = relu(bns_[0]->forward(x));
    const Tensor shortcut = spec_.projection ? shortcut_->forward(a) : x;
    Tensor h = convs_[0]->forward(a);
    for (size_t i = 1; i < convs_.size(); ++i) {
      h = relu(bns_[i]->forward(h));
      if (i + 1 == convs_.size() && spec_.dropout > 0)
        h = dropout(h, {.p = spec_.dropout, .training = training()}, &dropout_rng);
      h = convs_[i]->forward(h);
    }
    return add(shortcut, h);
  }

  void freeze_bn(bool frozen) {
    for (auto& bn : bns_) {
      if (frozen) bn->freeze(true);
      else bn->unfreeze();
    }
  }

 private:
  BlockSpec spec_;
  std::vector<std::shared_ptr<BatchNorm2d>> bns_;
  std::vector<std::shared_ptr<Conv2d>> convs_;
  std::shared_ptr<Conv2d> shortcut_;
};

namespace {
std::vector<BlockSpec> a1_stride8_blocks() {
  std::vector<BlockSpec> b;
  auto level = [&](int lvl, int count, int64_t in, std::vector<int64_t> f, int64_t stride,
                   int64_t dil_first_2a, int64_t dil_first_2b, int64_t dil_rest) {
    for (int i = 0; i < count; ++i) {
      const std::string name = "b" + std::to_string(lvl) + (i == 0 ? "" : "_" + std::to_string(i));
      b.push_back({name, i == 0 ? in : f.back(), f, i == 0 ? stride : 1,
                   i == 0 ? dil_first_2a : dil_rest, i == 0 ? dil_first_2b : dil_rest, i == 0, 0.0});
    }
  };
  level(2, 3, 64, {128, 128}, 2, 1, 1, 1);
  level(3, 3, 128, {256, 256}, 2, 1, 1, 1);
  level(4, 6, 256, {512, 512}, 2, 1, 1, 1);
  // Level 5: the stride-2 of classification becomes dilation 2 ("inc_dilate"); the first
  // conv of 5a keeps the incoming dilation 1.
  level(5, 3, 512, {512, 1024}, 1, 1, 2, 2);
  b.push_back({"b6", 1024, {512, 1024, 2048}, 1, 1, 4, true, 0.3});
  b.push_back({"b7", 2048, {1024, 2048, 4096}, 1, 1, 4, true, 0.5});
  return b;
}
}  // namespace

ResNet38::ResNet38(const ModelOptions& options) {
  num_classes_ = options.num_classes;
  dropout_rng_.set_state(options.seed ^ 0x9e3779b97f4a7c15ull, 0);
  Generator gen(options.seed);
  const bool init = options.initialize;
  conv1a_ = register_module("conv1a", std::make_shared<Conv2d>(Conv2dParams{
      .in_channels = 3, .out_channels = 64, .kernel = 3, .pad = 1, .bias = false, .initialize = false}));
  if (init) kaiming_normal_(conv1a_->weight(), &gen);
  for (const BlockSpec& spec : a1_stride8_blocks())
    blocks_.push_back(register_module(spec.name, std::make_shared<ResBlock38>(spec, gen, options.initialize)));
  bn7_ = register_module("bn7", std::make_shared<BatchNorm2d>(BatchNorm2dParams{.num_features = 4096, .eps = kBnEps}));
  // The head: MXNet Xavier(gaussian, in, magnitude 2) = He normal with fan_in.
  conv6a_ = register_module("conv6a", std::make_shared<Conv2d>(Conv2dParams{
      .in_channels = 4096, .out_channels = 512, .kernel = 3, .pad = 12, .dilation = 12, .initialize = false}));
  classifier_ = register_module("classifier", std::make_shared<Conv2d>(Conv2dParams{
      .in_channels = 512, .out_channels = num_classes_, .kernel = 3, .pad = 12, .dilation = 12, .initialize = false}));
  if (init) kaiming_normal_(conv6a_->weight(), &gen);
  if (init) kaiming_normal_(classifier_->weight(), &gen);
  if (init) zeros_(conv6a_->bias());
  if (init) zeros_(classifier_->bias());
}

Tensor ResNet38::features(const Tensor& x) {
  Tensor h = conv1a_->forward(x);
  for (auto& b : blocks_) h = b->forward_block(h, dropout_rng_);
  return relu(bn7_->forward(h));
}

Tensor ResNet38::logits(const Tensor& x) {
  return classifier_->forward(relu(conv6a_->forward(features(x))));
}

void ResNet38::set_frozen_batch_norm(bool frozen) {
  for (auto& b : blocks_) b->freeze_bn(frozen);
  if (frozen) bn7_->freeze(true);
  else bn7_->unfreeze();
}

}  // namespace cbst
