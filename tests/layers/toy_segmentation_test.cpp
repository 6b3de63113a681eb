// A small convolutional net (conv/relu/pool/conv/upsample) fits a toy segmentation task on
// the CPU with SGD: the layers, the loss and the optimizer working together.
#include <gtest/gtest.h>

#include <cstdio>

#include "layers/conv2d.h"
#include "layers/max_pool2d.h"
#include "layers/relu.h"
#include "layers/sgd.h"
#include "layers/softmax_cross_entropy.h"
#include "layers/upsample.h"
#include "tests/layers/layer_test_util.h"

namespace cbst {
namespace {

// Images of 4×4 blocks of random brightness plus pixel noise (±0.15); the label of a pixel
// is 1 when its block is brighter than 0.5, else 0; one pixel in 16 is ignored (255).
void make_batch(Generator& gen, int64_t n, int64_t size, Tensor& images, Tensor& labels) {
  std::vector<float> x(size_t(n * size * size));
  std::vector<uint8_t> y(x.size());
  for (int64_t b = 0; b < n; ++b) {
    std::vector<double> block(size_t((size / 4) * (size / 4)));
    for (double& v : block) v = gen.next_double();
    for (int64_t r = 0; r < size; ++r)
      for (int64_t c = 0; c < size; ++c) {
        const double v = block[size_t((r / 4) * (size / 4) + c / 4)];
        const size_t k = size_t((b * size + r) * size + c);
        x[k] = float(v + 0.3 * (gen.next_double() - 0.5));
        y[k] = (r * size + c) % 16 == 5 ? 255 : (v > 0.5 ? 1 : 0);
      }
  }
  images = Tensor::from_vector<float>(x, {n, 1, size, size});
  labels = Tensor::from_vector<uint8_t>(y, {n, size, size});
}

TEST(ToySegmentation, SmallNetFitsBrightnessSegmentationWithSgd) {
  manual_seed(1234);  // drives the Kaiming initialisation of both convolutions
  Sequential net;
  net.add("conv1", std::make_shared<Conv2d>(Conv2dParams{.in_channels = 1, .out_channels = 8, .kernel = 3, .pad = 1}));
  net.add("relu1", std::make_shared<ReLU>());
  net.add("pool1", std::make_shared<MaxPool2d>(MaxPool2dOptions{.kernel = 2, .stride = 2, .ceil_mode = true}));
  net.add("conv2", std::make_shared<Conv2d>(Conv2dParams{.in_channels = 8, .out_channels = 2, .kernel = 3, .pad = 1}));
  net.add("up", std::make_shared<Upsample>(UpsampleOptions{.height = 16, .width = 16}));
  Sgd opt(alex_param_groups(net.named_parameters()),
          {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4});
  Generator data(99);
  double first = 0.0, last = 0.0;
  constexpr int kSteps = 150;
  for (int step = 0; step < kSteps; ++step) {
    Tensor images, labels;
    make_batch(data, 8, 16, images, labels);
    opt.zero_grad();
    const Tensor loss = softmax_cross_entropy(net(images), labels);
    loss.backward();
    opt.step();
    const double v = loss.item<float>();
    if (step == 0) first = v;
    // Average of the last 10 steps, so one hard batch does not decide the test.
    if (step >= kSteps - 10) last += v / 10.0;
  }
  std::printf("[ toy-seg ] loss %.4f -> %.4f (mean of the last 10 of %d steps)\n", first, last, kSteps);
  EXPECT_GT(first, 0.5);   // near ln 2 at initialisation
  EXPECT_LT(last, 0.25);   // fitted: well below chance
}

}  // namespace
}  // namespace cbst
