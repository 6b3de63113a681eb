// External weight-file layouts built from one of our models' state, for import tests.
#pragma once

#include <map>
#include <string>

#include "engine/tensor.h"
#include "weights/tensor_map.h"

namespace cbst::testing {

// torchvision's vgg16 state dict (features.N, classifier.{0,3,6}, fc6/fc7 as matrices) holding
// an FCN8s state's trunk; classifier.6 (the ImageNet classifier) is zeros.
inline weights::TensorMap torchvision_vgg16_layout(const std::map<std::string, Tensor>& fcn8s_state) {
  const int idx[] = {0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28};
  const char* names[] = {"conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
                         "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"};
  weights::TensorMap tv;
  for (int i = 0; i < 13; ++i) {
    tv.set("features." + std::to_string(idx[i]) + ".weight", fcn8s_state.at(std::string(names[i]) + ".weight"));
    tv.set("features." + std::to_string(idx[i]) + ".bias", fcn8s_state.at(std::string(names[i]) + ".bias"));
  }
  tv.set("classifier.0.weight", fcn8s_state.at("fc6.weight").reshape({4096, 25088}));
  tv.set("classifier.0.bias", fcn8s_state.at("fc6.bias"));
  tv.set("classifier.3.weight", fcn8s_state.at("fc7.weight").reshape({4096, 4096}));
  tv.set("classifier.3.bias", fcn8s_state.at("fc7.bias"));
  tv.set("classifier.6.weight", Tensor::zeros({1000, 4096}));
  tv.set("classifier.6.bias", Tensor::zeros({1000}));
  return tv;
}

}  // namespace cbst::testing
