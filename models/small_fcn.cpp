#include "models/small_fcn.h"

#include "engine/ops.h"
#include "engine/random.h"
#include "layers/dropout.h"
#include "layers/max_pool2d.h"

namespace cbst {

namespace {
struct UnitSpec {
  const char* name;
  int64_t in_mult, out_mult, dilation;
};
// Widths are multiples of `width`; "pool" after conv1_2 and conv2_2.
constexpr UnitSpec kUnits[] = {
    {"conv1_1", 0, 1, 1}, {"conv1_2", 1, 1, 1}, {"conv2_1", 1, 2, 1},
    {"conv2_2", 2, 2, 1}, {"conv3_1", 2, 4, 2}, {"conv3_2", 4, 4, 4},
};
}  // namespace

SmallFcn::SmallFcn(const ModelOptions& options, int64_t width) {
  num_classes_ = options.num_classes;
  dropout_rng_.set_state(options.seed ^ 0x9e3779b97f4a7c15ull, 0);
  Generator gen(options.seed);
  const bool init = options.initialize;
  for (const UnitSpec& u : kUnits) {
    const int64_t in = u.in_mult == 0 ? 3 : u.in_mult * width;
    Unit unit;
    unit.conv = register_module(u.name, std::make_shared<Conv2d>(Conv2dParams{
        .in_channels = in, .out_channels = u.out_mult * width, .kernel = 3, .pad = u.dilation,
        .dilation = u.dilation, .stride = 1, .bias = false, .initialize = false}));
    if (init) kaiming_normal_(unit.conv->weight(), &gen);
    unit.bn = register_module(std::string("bn") + (u.name + 4),
                              std::make_shared<BatchNorm2d>(BatchNorm2dParams{.num_features = u.out_mult * width}));
    units_.push_back(unit);
  }
  classifier_ = register_module("classifier", std::make_shared<Conv2d>(Conv2dParams{
      .in_channels = 4 * width, .out_channels = num_classes_, .kernel = 1, .pad = 0, .initialize = false}));
  if (init) normal_(classifier_->weight(), 0.0, 0.01, &gen);
  if (init) zeros_(classifier_->bias());
}

Tensor SmallFcn::logits(const Tensor& x) {
  Tensor h = x;
  for (size_t i = 0; i < units_.size(); ++i) {
    h = relu(units_[i].bn->forward(units_[i].conv->forward(h)));
    if (i == 1 || i == 3) h = max_pool2d(h, {.kernel = 2, .stride = 2, .pad = 0, .ceil_mode = true});
  }
  h = dropout(h, {.p = 0.1, .training = training()}, &dropout_rng_);
  return classifier_->forward(h);
}

void SmallFcn::set_frozen_batch_norm(bool frozen) {
  for (Unit& u : units_) {
    if (frozen) u.bn->freeze(true);
    else u.bn->unfreeze();
  }
}

}  // namespace cbst
