#include "models/segmentation_model.h"

#include <functional>
#include <map>

#include "layers/upsample.h"
#include "models/fcn8s_vgg16.h"
#include "models/resnet38.h"
#include "models/small_deeplabv3plus.h"
#include "models/small_fcn.h"

namespace cbst {

Tensor SegmentationModel::forward(const Tensor& x) {
  CBST_CHECK(x.dim() == 4 && x.size(1) == 3, name(), ": expected images (N, 3, H, W), got ",
             shape_str(x.shape()));
  Tensor y = logits(x);
  if (y.size(2) == x.size(2) && y.size(3) == x.size(3)) return y;
  return upsample_bilinear(y, {.height = x.size(2), .width = x.size(3), .align_corners = false});
}

static bool is_bias_like(const std::string& name) {
  // Conv biases and batch-norm shifts train at 2× the learning rate without decay.
  const std::string suffix = ".bias";
  return name.size() >= suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<ParameterGroupSpec> SegmentationModel::parameter_groups() const {
  ParameterGroupSpec weights{.name = "weights", .parameters = {}, .lr_mult = 1.0, .weight_decay_mult = 1.0};
  ParameterGroupSpec biases{.name = "biases", .parameters = {}, .lr_mult = 2.0, .weight_decay_mult = 0.0};
  for (auto& [name, t] : named_parameters()) {
    if (!t.requires_grad()) continue;
    (is_bias_like(name) ? biases : weights).parameters.emplace_back(name, t);
  }
  return {weights, biases};
}

namespace {
using Factory = std::function<std::shared_ptr<SegmentationModel>(const ModelOptions&)>;
const std::map<std::string, Factory>& factories() {
  static const std::map<std::string, Factory> f = {
      {"fcn8s-vgg16", [](const ModelOptions& o) { return std::make_shared<Fcn8sVgg16>(o, Fcn8sVariant::at_once); }},
      {"fcn8s-vgg16-staged", [](const ModelOptions& o) { return std::make_shared<Fcn8sVgg16>(o, Fcn8sVariant::staged); }},
      {"resnet38", [](const ModelOptions& o) { return std::make_shared<ResNet38>(o); }},
      {"small-fcn", [](const ModelOptions& o) { return std::make_shared<SmallFcn>(o); }},
      {"small-deeplabv3plus", [](const ModelOptions& o) { return std::make_shared<SmallDeepLabV3Plus>(o); }},
  };
  return f;
}
}  // namespace

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (auto& [name, f] : factories()) names.push_back(name);
  return names;
}

std::shared_ptr<SegmentationModel> create_model(const std::string& name,
                                                const ModelOptions& options) {
  auto it = factories().find(name);
  if (it == factories().end()) {
    std::string known;
    for (auto& n : model_names()) known += (known.empty() ? "" : ", ") + n;
    CBST_THROW("unknown model '", name, "'; known models: ", known);
  }
  CBST_CHECK(options.num_classes >= 1 && options.num_classes <= 255, "a model needs 1 to 255 ",
             "classes (labels are u8 with 255 = ignore), got ", options.num_classes);
  return it->second(options);
}

}  // namespace cbst
