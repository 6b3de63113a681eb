#include "models/small_deeplabv3plus.h"

#include "engine/ops.h"
#include "layers/dropout.h"
#include "layers/max_pool2d.h"
#include "layers/upsample.h"

namespace cbst {

struct ConvBnSpec {
  int64_t in, out, kernel = 3, stride = 1, dilation = 1;
};

// conv (no bias) → BN; the ReLU is the caller's, since a residual block adds before it.
class ConvBn : public Module {
 public:
  ConvBn(const ConvBnSpec& s, Generator& gen, bool init, std::vector<std::shared_ptr<BatchNorm2d>>& bns) {
    conv_ = register_module("conv", std::make_shared<Conv2d>(Conv2dParams{
        .in_channels = s.in, .out_channels = s.out, .kernel = s.kernel,
        .pad = s.kernel == 1 ? 0 : s.dilation, .dilation = s.dilation, .stride = s.stride,
        .bias = false, .initialize = false}));
    if (init) kaiming_normal_(conv_->weight(), &gen);
    bn_ = register_module("bn", std::make_shared<BatchNorm2d>(BatchNorm2dParams{.num_features = s.out}));
    bns.push_back(bn_);
  }
  Tensor forward(const Tensor& x) override { return bn_->forward(conv_->forward(x)); }

 private:
  std::shared_ptr<Conv2d> conv_;
  std::shared_ptr<BatchNorm2d> bn_;
};

// ResNet's basic block: relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x)).
class BasicBlock : public Module {
 public:
  BasicBlock(int64_t in, int64_t out, int64_t stride, int64_t dilation, Generator& gen, bool init,
             std::vector<std::shared_ptr<BatchNorm2d>>& bns) {
    conv1_ = register_module("conv1", std::make_shared<ConvBn>(
        ConvBnSpec{.in = in, .out = out, .stride = stride, .dilation = dilation}, gen, init, bns));
    conv2_ = register_module("conv2", std::make_shared<ConvBn>(
        ConvBnSpec{.in = out, .out = out, .dilation = dilation}, gen, init, bns));
    if (in != out || stride != 1)
      shortcut_ = register_module("shortcut", std::make_shared<ConvBn>(
          ConvBnSpec{.in = in, .out = out, .kernel = 1, .stride = stride}, gen, init, bns));
  }
  Tensor forward(const Tensor& x) override {
    const Tensor h = conv2_->forward(relu(conv1_->forward(x)));
    return relu(add(h, shortcut_ ? shortcut_->forward(x) : x));
  }

 private:
  std::shared_ptr<ConvBn> conv1_, conv2_, shortcut_;
};

namespace {
constexpr int64_t kAsppDilations[] = {3, 6, 9};
constexpr int64_t kAsppWidth = 64;
}  // namespace

SmallDeepLabV3Plus::SmallDeepLabV3Plus(const ModelOptions& options) {
  num_classes_ = options.num_classes;
  dropout_rng_.set_state(options.seed ^ 0x9e3779b97f4a7c15ull, 0);
  Generator gen(options.seed);
  const bool init = options.initialize;
  auto conv_bn = [&](const std::string& name, const ConvBnSpec& s) {
    return register_module(name, std::make_shared<ConvBn>(s, gen, init, batch_norms_));
  };
  auto block = [&](const std::string& name, int64_t in, int64_t out, int64_t stride, int64_t dilation) {
    blocks_.push_back(register_module(name, std::make_shared<BasicBlock>(in, out, stride, dilation, gen, init,
                                                                         batch_norms_)));
  };
  stem1_ = conv_bn("stem1", {.in = 3, .out = 24, .stride = 2});
  stem2_ = conv_bn("stem2", {.in = 24, .out = 32});
  block("layer1", 32, 32, 1, 1);
  block("layer2", 32, 64, 2, 1);
  block("layer3", 64, 96, 1, 2);
  block("layer4", 96, 96, 1, 4);
  const int64_t top = 96;
  aspp_.push_back(conv_bn("aspp.branch0", {.in = top, .out = kAsppWidth, .kernel = 1}));
  int index = 1;
  for (int64_t d : kAsppDilations)
    aspp_.push_back(conv_bn("aspp.branch" + std::to_string(index++), {.in = top, .out = kAsppWidth, .dilation = d}));
  aspp_pool_ = register_module("aspp.pool", std::make_shared<Conv2d>(Conv2dParams{
      .in_channels = top, .out_channels = kAsppWidth, .kernel = 1, .pad = 0, .initialize = false}));
  if (init) kaiming_normal_(aspp_pool_->weight(), &gen);
  if (init) zeros_(aspp_pool_->bias());
  const int64_t branches = int64_t(aspp_.size()) + 1;
  aspp_project_ = conv_bn("aspp.project", {.in = branches * kAsppWidth, .out = kAsppWidth, .kernel = 1});
  skip_reduce_ = conv_bn("decoder.skip", {.in = 32, .out = 16, .kernel = 1});
  decode1_ = conv_bn("decoder.conv1", {.in = kAsppWidth + 16, .out = 64});
  decode2_ = conv_bn("decoder.conv2", {.in = 64 + 24, .out = 32});
  classifier_ = register_module("classifier", std::make_shared<Conv2d>(Conv2dParams{
      .in_channels = 32, .out_channels = num_classes_, .kernel = 1, .pad = 0, .initialize = false}));
  if (init) normal_(classifier_->weight(), 0.0, 0.01, &gen);
  if (init) zeros_(classifier_->bias());
}

Tensor SmallDeepLabV3Plus::logits(const Tensor& x) {
  const Tensor fine = relu(stem1_->forward(x));  // stride 2: the second skip
  Tensor h = relu(stem2_->forward(fine));
  h = max_pool2d(h, {.kernel = 3, .stride = 2, .pad = 1, .ceil_mode = false});
  const Tensor skip = blocks_[0]->forward(h);
  h = skip;
  for (size_t i = 1; i < blocks_.size(); ++i) h = blocks_[i]->forward(h);

  std::vector<Tensor> branches;
  for (auto& b : aspp_) branches.push_back(relu(b->forward(h)));
  // Image pooling: the global mean, a 1×1 conv, spread back over the map (bilinear from a
  // 1×1 map is a broadcast that autograd sums back).
  const Tensor pooled = relu(aspp_pool_->forward(mean(h, {2, 3}, true)));
  branches.push_back(upsample_bilinear(pooled, {.height = h.size(2), .width = h.size(3)}));
  Tensor a = relu(aspp_project_->forward(concat(branches, 1)));
  a = dropout(a, {.p = 0.1, .training = training()}, &dropout_rng_);

  a = upsample_bilinear(a, {.height = skip.size(2), .width = skip.size(3)});
  const Tensor low = relu(skip_reduce_->forward(skip));
  h = relu(decode1_->forward(concat({a, low}, 1)));
  // Thin classes (poles, lights, bicycle frames) are one or two pixels wide at CPU sizes:
  // refine once more at stride 2 against the stem's own features.
  h = upsample_bilinear(h, {.height = fine.size(2), .width = fine.size(3)});
  h = relu(decode2_->forward(concat({h, fine}, 1)));
  return classifier_->forward(h);
}

void SmallDeepLabV3Plus::set_frozen_batch_norm(bool frozen) {
  for (auto& bn : batch_norms_) {
    if (frozen) bn->freeze(true);
    else bn->unfreeze();
  }
}

}  // namespace cbst
