// Inference with flips and test scales: every average is recomputed here by hand from the
// model's logits, with the same ops in the same order.
#include "selftrain/inference.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/softmax.h"
#include "layers/upsample.h"
#include "tests/support/expect_close.h"

namespace cbst {
namespace {

constexpr int64_t kClasses = 5;

// A stride-1 model (logits at the input resolution), so that forward() needs no
// interpolation; dropout makes train mode observable, and it can be told to fail.
class PixelModel : public SegmentationModel {
 public:
  explicit PixelModel(uint64_t seed) {
    num_classes_ = kClasses;
    conv_ = register_module("conv", std::make_shared<Conv2d>(Conv2dParams{
                                        .in_channels = 3, .out_channels = kClasses, .kernel = 3, .pad = 1}));
    Generator gen(seed);
    normal_(conv_->weight(), 0.0, 1.0, &gen);
    normal_(conv_->bias(), 0.0, 1.0, &gen);
  }
  Tensor logits(const Tensor& x) override {
    if (fail_) throw std::runtime_error("logits failed");
    return dropout(conv_->forward(x), {.p = 0.5, .training = training()}, &dropout_rng_);
  }
  std::string name() const override { return "pixel-model"; }
  int64_t output_stride() const override { return 1; }
  std::string input_convention() const override { return "torchvision"; }
  bool fail_ = false;

 private:
  std::shared_ptr<Conv2d> conv_;
};

// small-fcn (output stride 4, batch norm, dropout) with a classifier large enough that the
// probabilities are far from uniform, so that flips and scales visibly change them.
std::shared_ptr<SegmentationModel> make_small_fcn(uint64_t seed = 3) {
  auto model = create_model("small-fcn", {.num_classes = kClasses, .seed = seed});
  Generator gen(seed + 1);
  for (auto& [name, t] : model->named_parameters())
    if (name == "classifier.weight" || name == "classifier.bias") normal_(t, 0.0, 1.0, &gen);
  model->eval();
  return model;
}

Tensor images(int64_t n, int64_t h, int64_t w, uint64_t seed = 7) {
  Generator gen(seed);
  return randn({n, 3, h, w}, 0.0, 1.0, DType::f32, Device::cpu(), &gen);
}

Tensor resize(const Tensor& x, int64_t h, int64_t w) {
  return upsample_bilinear(x, {.height = h, .width = w, .align_corners = false});
}

// One run by hand: softmax of the logits (of the mirrored input, flipped back, with `mirror`)
// at the input scaled by `s`, interpolated to (oh, ow).
Tensor run_by_hand(SegmentationModel& model, const Tensor& x, double s, bool mirror, int64_t oh, int64_t ow) {
  NoGradGuard no_grad;
  const int64_t sh = std::llround(x.size(2) * s), sw = std::llround(x.size(3) * s);
  const Tensor xs = (sh == x.size(2) && sw == x.size(3)) ? x : resize(x, sh, sw);
  Tensor p = mirror ? flip(softmax(model.logits(flip(xs, 3))), 3) : softmax(model.logits(xs));
  return (p.size(2) == oh && p.size(3) == ow) ? p : resize(p, oh, ow);
}

// Sums of probabilities over the classes should be 1 up to f32 rounding of C-term sums and
// of the averages (a few ulp of 1).
constexpr double kSumTolerance = 1e-5;
// The same ops in the same order give the same bits, except for the division by the number
// of runs (ours multiplies by 1/R): one rounding of values ≤ 1.
constexpr double kSameOpsTolerance = 1e-6;

TEST(PredictProbabilities, SumToOneAtEveryPixelForScalesAndFlips) {
  auto model = make_small_fcn();
  const Tensor x = images(2, 13, 17);
  for (const InferenceOptions& o :
       {InferenceOptions{}, InferenceOptions{.scales = {0.5, 0.75, 1.0}, .flip = true},
        InferenceOptions{.scales = {0.5, 1.25}, .flip = true, .out_height = 13, .out_width = 17}}) {
    const Tensor p = predict_probabilities(*model, x, o);
    const int64_t h = o.out_height ? o.out_height : 4, w = o.out_width ? o.out_width : 5;  // ⌈13/4⌉, ⌈17/4⌉
    ASSERT_EQ(p.shape(), (Shape{2, kClasses, h, w}));
    CBST_EXPECT_CLOSE("sum over classes", sum(p, {1}), Tensor::ones({2, h, w}), kSumTolerance, 0.0);
    EXPECT_GE(min(p).item<float>(), 0.0f);
    EXPECT_FALSE(p.requires_grad());
  }
}

TEST(PredictProbabilities, DefaultSizeIsTheNetworkOutputResolution) {
  auto model = make_small_fcn();
  PixelModel pixel(1);
  for (auto [h, w] : {std::pair<int64_t, int64_t>{9, 14}, {16, 16}, {17, 23}, {5, 6}}) {
    NoGradGuard no_grad;
    const Tensor l = model->logits(images(1, h, w));
    EXPECT_EQ(network_output_size(*model, h, w), std::make_pair(l.size(2), l.size(3))) << h << "x" << w;
    EXPECT_EQ(network_output_size(pixel, h, w), std::make_pair(h, w));
  }
}

TEST(PredictProbabilities, ScaleOneAloneIsTheSoftmaxOfTheLogits) {
  auto model = make_small_fcn();
  const Tensor x = images(2, 13, 17);
  NoGradGuard no_grad;
  // At the network's resolution: exactly softmax(logits(x)), what self-training caches.
  CBST_EXPECT_CLOSE("stride 4", predict_probabilities(*model, x), softmax(model->logits(x)), 0.0, 0.0);
  // At the input resolution: the probabilities interpolated (not the logits).
  CBST_EXPECT_CLOSE("stride 4 at input size",
                    predict_probabilities(*model, x, {.out_height = 13, .out_width = 17}),
                    resize(softmax(model->logits(x)), 13, 17), 0.0, 0.0);
  // A model whose logits are at the input resolution: exactly softmax(forward(x)).
  PixelModel pixel(1);
  pixel.eval();
  CBST_EXPECT_CLOSE("stride 1", predict_probabilities(pixel, x), softmax(pixel.forward(x)), 0.0, 0.0);
}

TEST(PredictProbabilities, FlipAveragesTheImageAndItsMirror) {
  auto model = make_small_fcn();
  const Tensor x = images(2, 13, 17);
  for (auto [oh, ow] : {std::pair<int64_t, int64_t>{4, 5}, {13, 17}}) {
    const Tensor want = (run_by_hand(*model, x, 1.0, false, oh, ow) + run_by_hand(*model, x, 1.0, true, oh, ow)) * 0.5;
    const Tensor got = predict_probabilities(*model, x, {.flip = true, .out_height = oh, .out_width = ow});
    CBST_EXPECT_CLOSE("flip average", got, want, kSameOpsTolerance, 0.0);
    // The mirror really contributes: the average differs from the plain run.
    EXPECT_GT(max(abs(got - run_by_hand(*model, x, 1.0, false, oh, ow))).item<float>(), 1e-3f);
  }
}

TEST(PredictProbabilities, MultiScaleAveragesThePerScaleRuns) {
  auto model = make_small_fcn();
  const Tensor x = images(1, 21, 30);
  const std::vector<double> scales = {0.5, 0.75, 1.0};
  for (bool mirror : {false, true}) {
    for (auto [oh, ow] : {std::pair<int64_t, int64_t>{6, 8}, {21, 30}}) {
      Tensor sum_runs;
      int runs = 0;
      for (double s : scales)
        for (bool m : {false, true}) {
          if (m && !mirror) continue;
          const Tensor p = run_by_hand(*model, x, s, m, oh, ow);
          sum_runs = sum_runs.defined() ? sum_runs + p : p;
          ++runs;
        }
      const Tensor got =
          predict_probabilities(*model, x, {.scales = scales, .flip = mirror, .out_height = oh, .out_width = ow});
      CBST_EXPECT_CLOSE("multi-scale average", got, sum_runs / double(runs), kSameOpsTolerance, 0.0);
    }
  }
  // Scale 0.5 of 21x30 runs at round(10.5) x 15 = 11 x 15 (half away from zero, as llround).
  const Tensor half = predict_probabilities(*model, x, {.scales = {0.5}});
  NoGradGuard no_grad;
  CBST_EXPECT_CLOSE("scale 0.5", half, resize(softmax(model->logits(resize(x, 11, 15))), 6, 8), 0.0, 0.0);
}

TEST(PredictProbabilities, RunsInEvalModeAndRestoresTheModelsMode) {
  auto model = make_small_fcn();
  const Tensor x = images(2, 12, 12);
  const Tensor in_eval = predict_probabilities(*model, x, {.flip = true});
  EXPECT_FALSE(model->training());

  const auto state_before = model->state_dict();
  model->train();
  const Tensor a = predict_probabilities(*model, x, {.flip = true});
  const Tensor b = predict_probabilities(*model, x, {.flip = true});
  EXPECT_TRUE(model->training());
  // No dropout, running statistics used and left alone.
  CBST_EXPECT_CLOSE("train mode, first call", a, in_eval, 0.0, 0.0);
  CBST_EXPECT_CLOSE("train mode, second call", b, in_eval, 0.0, 0.0);
  for (auto& [name, t] : model->state_dict())
    CBST_EXPECT_CLOSE(name, t, state_before.at(name), 0.0, 0.0);

  PixelModel pixel(2);
  pixel.train();
  pixel.fail_ = true;
  EXPECT_THROW(predict_probabilities(pixel, x), std::runtime_error);
  EXPECT_TRUE(pixel.training()) << "the mode is restored when the model throws";
}

TEST(PredictLabels, AreTheArgmaxAtTheInputResolution) {
  auto model = make_small_fcn();
  const Tensor x = images(2, 13, 17);
  const InferenceOptions o{.scales = {0.75, 1.0}, .flip = true};
  const Tensor labels = predict_labels(*model, x, o);
  ASSERT_EQ(labels.shape(), (Shape{2, 13, 17}));
  ASSERT_EQ(labels.dtype(), DType::u8);
  const Tensor probs = predict_probabilities(*model, x, {.scales = o.scales, .flip = true, .out_height = 13, .out_width = 17});
  CBST_EXPECT_CLOSE("labels", labels, argmax(probs, 1), 0.0, 0.0);
  // Several classes are predicted: the test is not passing on a constant map.
  const std::vector<uint8_t> v = labels.to_vector<uint8_t>();
  EXPECT_LT(std::count(v.begin(), v.end(), v[0]), int64_t(v.size()));
}

TEST(PredictProbabilities, RejectsBadArguments) {
  auto model = make_small_fcn();
  auto message = [&](const Tensor& x, const InferenceOptions& o) {
    try {
      predict_probabilities(*model, x, o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(Tensor::zeros({1, 4, 8, 8}), {}).find("(N, 3, H, W)"), std::string::npos);
  EXPECT_NE(message(Tensor::zeros({1, 3, 8, 8}, DType::f64), {}).find("f32"), std::string::npos);
  EXPECT_NE(message(images(1, 8, 8), {.scales = {}}).find("at least one"), std::string::npos);
  EXPECT_NE(message(images(1, 8, 8), {.scales = {1.0, -0.5}}).find("positive"), std::string::npos);
  EXPECT_NE(message(images(1, 8, 8), {.out_height = 4}).find("both"), std::string::npos);
  // A scale that shrinks the image below what small-fcn can pool: the run is named.
  EXPECT_NE(message(images(1, 8, 8), {.scales = {1.0, 0.2}}).find("small-fcn at test scale 0.2 (input 2x2)"),
            std::string::npos);
  EXPECT_FALSE(model->training());
}

// CPU vs CUDA in strict fp32: cuDNN convolutions and batch norm sum in another order; after
// softmax and a 3-scale average, probabilities agree to a few 1e-6, 1e-4 leaves margin.
// With TF32 (the default, as torch's cudnn.allow_tf32) they differed by up to 3.4e-4 on an
// H200, so the strict comparison turns TF32 off and the TF32 one has its own tolerance.
TEST(PredictProbabilitiesCuda, MatchesTheCpu) {
  CBST_REQUIRE_CUDA();
  set_tf32_enabled(false);
  auto cpu = make_small_fcn(11);
  auto gpu = make_small_fcn(11);
  gpu->to(Device::cuda());
  const Tensor x = images(2, 19, 26);
  const InferenceOptions o{.scales = {0.5, 0.75, 1.0}, .flip = true};
  const Tensor want = predict_probabilities(*cpu, x, o);
  const Tensor got = predict_probabilities(*gpu, x.to(Device::cuda()), o);
  EXPECT_TRUE(got.device().is_cuda());
  CBST_EXPECT_CLOSE("cuda vs cpu", got, want, 1e-4, 1e-3);
  const InferenceOptions full{.scales = o.scales, .flip = true, .out_height = 19, .out_width = 26};
  CBST_EXPECT_CLOSE("cuda vs cpu at input size", predict_probabilities(*gpu, x.to(Device::cuda()), full),
                    predict_probabilities(*cpu, x, full), 1e-4, 1e-3);
  // TF32 keeps 10 mantissa bits: probabilities move by a few 1e-4 through the small net.
  set_tf32_enabled(true);
  CBST_EXPECT_CLOSE("cuda (tf32) vs cpu", predict_probabilities(*gpu, x.to(Device::cuda()), o), want, 3e-3, 1e-2);
}

}  // namespace
}  // namespace cbst
