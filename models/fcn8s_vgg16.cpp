#include "models/fcn8s_vgg16.h"

#include "engine/ops.h"
#include "layers/crop.h"
#include "layers/dropout.h"
#include "layers/max_pool2d.h"

namespace cbst {

namespace {
struct VggConv {
  const char* name;
  int64_t in, out;
  bool pool_after;
};
constexpr VggConv kVgg[] = {
    {"conv1_1", 3, 64, false},    {"conv1_2", 64, 64, true},    {"conv2_1", 64, 128, false},
    {"conv2_2", 128, 128, true},  {"conv3_1", 128, 256, false}, {"conv3_2", 256, 256, false},
    {"conv3_3", 256, 256, true},  {"conv4_1", 256, 512, false}, {"conv4_2", 512, 512, false},
    {"conv4_3", 512, 512, true},  {"conv5_1", 512, 512, false}, {"conv5_2", 512, 512, false},
    {"conv5_3", 512, 512, true},
};
constexpr MaxPool2dOptions kPool{.kernel = 2, .stride = 2, .pad = 0, .ceil_mode = true};
}  // namespace

Fcn8sVgg16::Fcn8sVgg16(const ModelOptions& options, Fcn8sVariant variant) : variant_(variant) {
  num_classes_ = options.num_classes;
  dropout_rng_.set_state(options.seed ^ 0x9e3779b97f4a7c15ull, 0);
  const int64_t c = num_classes_;
  Generator gen(options.seed);
  const bool init = options.initialize;
  for (const VggConv& v : kVgg) {
    auto conv = register_module(v.name, std::make_shared<Conv2d>(Conv2dParams{
        .in_channels = v.in, .out_channels = v.out, .kernel = 3,
        .pad = std::string(v.name) == "conv1_1" ? 100 : 1, .initialize = false}));
    if (init) kaiming_normal_(conv->weight(), &gen);
    if (init) zeros_(conv->bias());
    convs_.push_back(conv);
  }
  fc6_ = register_module("fc6", std::make_shared<Conv2d>(Conv2dParams{.in_channels = 512, .out_channels = 4096, .kernel = 7, .pad = 0, .initialize = false}));
  fc7_ = register_module("fc7", std::make_shared<Conv2d>(Conv2dParams{.in_channels = 4096, .out_channels = 4096, .kernel = 1, .pad = 0, .initialize = false}));
  if (init) kaiming_normal_(fc6_->weight(), &gen);
  if (init) kaiming_normal_(fc7_->weight(), &gen);
  if (init) zeros_(fc6_->bias());
  if (init) zeros_(fc7_->bias());
  // Score layers start at zero, as Caffe's default constant filler leaves them.
  auto score = [&](const char* name, int64_t in) {
    auto s = register_module(name, std::make_shared<Conv2d>(Conv2dParams{.in_channels = in, .out_channels = c, .kernel = 1, .pad = 0, .initialize = false}));
    if (init) zeros_(s->weight());
    if (init) zeros_(s->bias());
    return s;
  };
  score_fr_ = score("score_fr", 4096);
  score_pool4_ = score("score_pool4", 512);
  score_pool3_ = score("score_pool3", 256);
  // Fixed bilinear upsampling: never trained (lr_mult 0 in the reference).
  auto up = [&](const char* name, int64_t k, int64_t stride) {
    auto u = register_module(name, std::make_shared<ConvTranspose2d>(ConvTranspose2dParams{
        .in_channels = c, .out_channels = c, .kernel = k, .stride = stride, .pad = 0,
        .bias = false, .bilinear = true, .trainable = false}));
    return u;
  };
  upscore2_ = up("upscore2", 4, 2);
  upscore_pool4_ = up("upscore_pool4", 4, 2);
  upscore8_ = up("upscore8", 16, 8);
}

std::string Fcn8sVgg16::name() const {
  return variant_ == Fcn8sVariant::staged ? "fcn8s-vgg16-staged" : "fcn8s-vgg16";
}

Tensor Fcn8sVgg16::logits(const Tensor& x) {
  // Any input size: conv1_1's 100-pixel padding makes pool5 at least 7×7, fc6's kernel, and
  // the final crop (offset 31) stays inside upscore8's output for every size.
  Tensor h = x, pool3, pool4;
  for (size_t i = 0; i < convs_.size(); ++i) {
    h = relu(convs_[i]->forward(h));
    if (kVgg[i].pool_after) {
      h = max_pool2d(h, kPool);
      if (std::string(kVgg[i].name) == "conv3_3") pool3 = h;
      if (std::string(kVgg[i].name) == "conv4_3") pool4 = h;
    }
  }
  h = dropout(relu(fc6_->forward(h)), {.p = 0.5, .training = training()}, &dropout_rng_);
  h = dropout(relu(fc7_->forward(h)), {.p = 0.5, .training = training()}, &dropout_rng_);
  h = score_fr_->forward(h);
  // The at-once net's fixed Scale layers (scale_pool4, scale_pool3); the staged net has none.
  if (variant_ == Fcn8sVariant::at_once) {
    pool4 = mul(pool4, 0.01);
    pool3 = mul(pool3, 0.0001);
  }
  const Tensor up2 = upscore2_->forward(h);
  h = add(up2, crop_like(score_pool4_->forward(pool4), up2, 5, 5));
  const Tensor up4 = upscore_pool4_->forward(h);
  h = add(up4, crop_like(score_pool3_->forward(pool3), up4, 9, 9));
  return crop_like(upscore8_->forward(h), x, 31, 31);
}

}  // namespace cbst
