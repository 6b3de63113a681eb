#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "layers/softmax_cross_entropy.h"
#include "models/segmentation_model.h"
#include "models/weight_import.h"
#include "tests/models/toy_task.h"
#include "tests/support/weight_layouts.h"
#include "tests/support/expect_close.h"
#include "weights/load_weights.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;

int64_t count(const NamedTensors& ts, bool only_trainable = false) {
  int64_t n = 0;
  for (auto& [name, t] : ts)
    if (!only_trainable || t.requires_grad()) n += t.numel();
  return n;
}

// Gives every parameter and buffer its own constant (k for the k-th tensor): a cheap way to
// make swapped or misplaced tensors visible without initialising 100M+ random weights.
void fill_distinct(SegmentationModel& m) {
  NoGradGuard guard;
  double k = 1;
  for (auto& [name, t] : m.state_dict()) {
    Tensor v = t;
    v.fill_(k++);
  }
}

fs::path temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("cbst_models_" + name + "_" + std::to_string(::getpid()));
  fs::create_directories(p);
  return p;
}

TEST(SmallFcn, OutputHasTheInputSizeForOddInputs) {
  auto m = create_model("small-fcn", {.num_classes = 7});
  m->eval();
  NoGradGuard guard;
  for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{37, 53}, {16, 16}, {65, 31}}) {
    const Tensor y = m->forward(rand_uniform({2, 3, h, w}));
    EXPECT_EQ(y.shape(), (Shape{2, 7, h, w}));
    EXPECT_EQ(m->logits(rand_uniform({1, 3, h, w})).size(2), (h + 3) / 4);
  }
}

// Plain gradient descent (step 0.05) for 40 steps on a learnable toy task — label = which
// third of the image a pixel is in — returning the first and the last loss.
std::pair<double, double> toy_task_losses(const std::string& model) {
  manual_seed(3);
  auto m = create_model(model, {.num_classes = 3, .seed = 1});
  m->train();
  const auto [x, labels] = testing::toy_batch();
  double first = 0, last = 0;
  for (int step = 0; step < 40; ++step) {
    m->zero_grad();
    const Tensor loss = softmax_cross_entropy(m->forward(x), labels);
    loss.backward();
    const double l = loss.item<float>();
    if (step == 0) first = l;
    last = l;
    NoGradGuard guard;
    for (auto& [name, p] : m->named_parameters()) {
      Tensor param = p;
      param.copy_(sub(param, mul(param.grad(), 0.05)));
    }
  }
  std::printf("[ loss     ] %s: %.4f -> %.4f after 40 steps\n", model.c_str(), first, last);
  return {first, last};
}

TEST(SmallFcn, TrainingStepsLowerTheLoss) {
  const auto [first, last] = toy_task_losses("small-fcn");
  // Chance level for 3 classes is ln 3 ≈ 1.10; the layout is learnable well below it.
  EXPECT_NEAR(first, std::log(3.0), 0.3);
  EXPECT_LT(last, 0.5 * first);
}

TEST(SmallDeepLabV3Plus, OutputHasTheInputSizeForOddInputs) {
  auto m = create_model("small-deeplabv3plus", {.num_classes = 7});
  m->eval();
  NoGradGuard guard;
  for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{37, 53}, {16, 16}, {65, 31}, {96, 192}}) {
    const Tensor y = m->forward(rand_uniform({2, 3, h, w}));
    EXPECT_EQ(y.shape(), (Shape{2, 7, h, w}));
    // Logits at the stem's stride 2 (3×3/2, pad 1): ⌈h/2⌉ rows.
    EXPECT_EQ(m->logits(rand_uniform({1, 3, h, w})).size(2), (h + 1) / 2);
  }
}

// The architecture of models/small_deeplabv3plus.h, counted by hand: a 3×3 conv–BN has
// 9·in·out + 2·out parameters (BN γ, β; the running statistics are buffers).
TEST(SmallDeepLabV3Plus, ParameterCountMatchesTheArchitecture) {
  auto conv_bn = [](int64_t in, int64_t out, int64_t k) { return k * k * in * out + 2 * out; };
  auto block = [&](int64_t in, int64_t out) {
    return conv_bn(in, out, 3) + conv_bn(out, out, 3) + (in != out ? conv_bn(in, out, 1) : 0);
  };
  for (int64_t c : {19, 16}) {
    const int64_t expected = conv_bn(3, 24, 3) + conv_bn(24, 32, 3) + block(32, 32) + block(32, 64) +
                             block(64, 96) + block(96, 96) +                           // trunk
                             conv_bn(96, 64, 1) + 3 * conv_bn(96, 64, 3) + (96 * 64 + 64) +  // ASPP branches
                             conv_bn(5 * 64, 64, 1) +                                  // ASPP projection
                             conv_bn(32, 16, 1) + conv_bn(80, 64, 3) + conv_bn(88, 32, 3) + (32 * c + c);
    auto m = create_model("small-deeplabv3plus", {.num_classes = c, .initialize = false});
    EXPECT_EQ(count(m->named_parameters()), expected) << c << " classes";
  }
}

TEST(SmallDeepLabV3Plus, TrainingStepsLowerTheLoss) {
  const auto [first, last] = toy_task_losses("small-deeplabv3plus");
  EXPECT_NEAR(first, std::log(3.0), 0.3);  // the classifier starts near zero: chance level
  EXPECT_LT(last, 0.5 * first);
}

TEST(SmallDeepLabV3Plus, FreezingBatchNormReachesEveryLayer) {
  auto m = create_model("small-deeplabv3plus", {.num_classes = 5, .seed = 2});
  const Tensor x = rand_uniform({2, 3, 32, 32}, -1, 1);
  auto running_stats = [&] {
    std::map<std::string, std::vector<float>> v;
    for (auto& [name, t] : m->state_dict())
      if (name.find("running_") != std::string::npos) v[name] = t.to_vector<float>();
    return v;
  };
  NoGradGuard guard;
  m->train();
  // Unfrozen, a train-mode forward moves every BN's running statistics...
  auto before = running_stats();
  (void)m->forward(x);
  auto after = running_stats();
  ASSERT_EQ(before.size(), 2u * 20);  // 20 batch norms, mean and variance each
  for (auto& [name, v] : before) EXPECT_NE(after.at(name), v) << name << " did not move unfrozen";
  // ...and frozen, none of them.
  m->set_frozen_batch_norm(true);
  before = running_stats();
  (void)m->forward(x);
  after = running_stats();
  for (auto& [name, v] : before) EXPECT_EQ(after.at(name), v) << name << " moved while frozen";
}

// FCN8s-VGG16: VGG16 has 138,357,544 parameters (Simonyan & Zisserman; torchvision's count),
// of which fc8 (4096×1000 + 1000 = 4,097,000) is dropped, leaving 134,260,544 for the trunk
// with fc6/fc7 as convolutions. FCN8s adds score_fr/score_pool4/score_pool3
// ((4096+1)+(512+1)+(256+1) = 4867 per class) and three bias-free bilinear deconvolutions
// (C²·(4·4 + 4·4 + 16·16) = 288·C²), which stay frozen.
TEST(Fcn8sVgg16, ParameterCountMatchesTheCaffeNet) {
  for (int64_t c : {19, 21}) {
    auto m = create_model("fcn8s-vgg16", {.num_classes = c, .initialize = false});
    const NamedTensors p = m->named_parameters();
    EXPECT_EQ(count(p), 134260544 + 4867 * c + 288 * c * c) << c << " classes";
    EXPECT_EQ(count(p, true), 134260544 + 4867 * c) << "the bilinear upsampling must be frozen";
    EXPECT_EQ(m->state_dict().at("fc6.weight").shape(), (Shape{4096, 512, 7, 7}));
  }
}

// Issue 12: FCN8s refused inputs under 32×32, though conv1_1's padding of 100 gives any input
// a 7×7 pool5. A 3×5 image (odd, below every stride) gives 3×5 finite logits.
TEST(Fcn8sVgg16Slow, AcceptsInputsSmallerThanItsStrides) {
  auto m = create_model("fcn8s-vgg16", {.num_classes = 19, .seed = 3});
  m->eval();
  NoGradGuard no_grad;
  Tensor x = Tensor::empty({1, 3, 3, 5});
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] = float(i % 7) - 3.0f;
  const Tensor y = m->logits(x);
  ASSERT_EQ(y.shape(), (Shape{1, 19, 3, 5}));
  for (float v : y.to_vector<float>()) EXPECT_TRUE(std::isfinite(v));
}

// ResNet-38 A1: the ImageNet .params file holds 193 arrays, 119 arg (109,167,912 elements,
// models_weights.md §3.3, enumerated from ademxapp's symbol code) + 74 aux. Without linear1000
// (4,097,000 elements, 2 arrays) the trunk is 117 arrays / 105,070,912 elements, and the
// CBST head adds conv6a (4096·512·9 + 512) and linear_C (512·C·9 + C).
TEST(ResNet38, ParameterCountMatchesTheMxnetFile) {
  auto m = create_model("resnet38", {.num_classes = 19, .initialize = false});
  const NamedTensors p = m->named_parameters();
  int64_t trunk = 0, trunk_arrays = 0, aux = 0;
  for (auto& [name, t] : p)
    if (name.rfind("conv6a", 0) != 0 && name.rfind("classifier", 0) != 0) trunk += t.numel(), ++trunk_arrays;
  for (auto& [name, t] : m->named_buffers())
    if (name.find("running_") != std::string::npos) ++aux;
  EXPECT_EQ(trunk, 105070912);
  EXPECT_EQ(trunk_arrays, 117);
  EXPECT_EQ(aux, 74);
  EXPECT_EQ(count(p), 105070912 + 4096 * 512 * 9 + 512 + 512 * 19 * 9 + 19);
}

TEST(ResNet38, MxnetNamesMapBothWays) {
  auto m = create_model("resnet38", {.num_classes = 19, .initialize = false});
  fill_distinct(*m);
  std::set<std::string> seen;
  for (auto& [name, t] : m->state_dict()) {
    if (name.find("num_batches_tracked") != std::string::npos) continue;
    const std::string mx = resnet38_mxnet_name(name, 19);
    EXPECT_TRUE(seen.insert(mx).second) << "two of our names map to " << mx;
  }
  // Spot checks from models_weights.md §3.3 and the psa converter.
  const auto st = m->state_dict();
  EXPECT_EQ(resnet38_mxnet_name("b5_2.bn_branch2b1.running_var", 19), "aux:bn5b2_branch2b1_moving_var");
  EXPECT_EQ(resnet38_mxnet_name("b4_3.conv_branch2a.weight", 19), "arg:res4b3_branch2a_weight");
  EXPECT_EQ(resnet38_mxnet_name("b2.conv_branch1.weight", 19), "arg:res2a_branch1_weight");
  EXPECT_EQ(st.at("b2.conv_branch2a.weight").shape(), (Shape{128, 64, 3, 3}));
  EXPECT_EQ(st.at("b5.conv_branch2b1.weight").shape(), (Shape{1024, 512, 3, 3}));
  EXPECT_EQ(st.at("b5.conv_branch1.weight").shape(), (Shape{1024, 512, 1, 1}));
  EXPECT_EQ(st.at("b5_1.conv_branch2a.weight").shape(), (Shape{512, 1024, 3, 3}));
  EXPECT_EQ(st.at("b6.conv_branch2a.weight").shape(), (Shape{512, 1024, 1, 1}));
  EXPECT_EQ(st.at("b6.conv_branch2b2.weight").shape(), (Shape{2048, 1024, 1, 1}));
  EXPECT_EQ(st.at("b7.conv_branch2b1.weight").shape(), (Shape{2048, 1024, 3, 3}));
  EXPECT_EQ(st.at("b7.conv_branch1.weight").shape(), (Shape{4096, 2048, 1, 1}));

  // An MXNet-layout map (as the ImageNet file, with linear1000) imports back exactly.
  weights::TensorMap mx;
  for (auto& [name, t] : st)
    if (name.find("num_batches_tracked") == std::string::npos && name.rfind("classifier", 0) != 0 &&
        name.rfind("conv6a", 0) != 0)
      mx.set(resnet38_mxnet_name(name, 19), t);
  mx.set("arg:linear1000_weight", Tensor::zeros({1000, 4096}));
  mx.set("arg:linear1000_bias", Tensor::zeros({1000}));
  auto fresh = create_model("resnet38", {.num_classes = 19, .initialize = false});
  const WeightImport r = import_weights(mx, *fresh);
  EXPECT_EQ(r.layout, "mxnet-resnet38");
  EXPECT_EQ(r.input_convention, "torchvision");
  EXPECT_EQ(r.dropped, (std::vector<std::string>{"arg:linear1000_bias", "arg:linear1000_weight"}));
  EXPECT_EQ(r.not_covered.size(), 4u);  // conv6a and classifier weight/bias keep their init
  CBST_EXPECT_CLOSE("b4_3 weight", fresh->state_dict().at("b4_3.conv_branch2a.weight"),
                    st.at("b4_3.conv_branch2a.weight"), 0.0, 0.0);
  CBST_EXPECT_CLOSE("bn7 var", fresh->state_dict().at("bn7.running_var"), st.at("bn7.running_var"), 0.0, 0.0);
}

// Issue 12: a state_dict saved from DataParallel/DDP names everything "module.<name>"; the
// prefix is removed (with a note) when every name carries it, and only then.
TEST(WeightImport, DataParallelPrefixIsRemovedWithANote) {
  auto src = create_model("small-fcn", {.num_classes = 19, .seed = 4});
  weights::TensorMap wrapped, partly;
  for (auto& [name, t] : src->state_dict()) {
    wrapped.set("module." + name, t);
    partly.set(partly.empty() ? name : "module." + name, t);
  }
  auto dst = create_model("small-fcn", {.num_classes = 19, .seed = 9});
  const WeightImport r = import_weights(wrapped, *dst);
  EXPECT_TRUE(r.dropped.empty());
  EXPECT_TRUE(r.not_covered.empty());
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_NE(r.notes[0].find("'module.' prefix"), std::string::npos) << r.notes[0];
  for (auto& [name, t] : src->state_dict()) CBST_EXPECT_CLOSE(name, dst->state_dict().at(name), t, 0.0, 0.0);
  // One name without the prefix: not a wrapped model's file; nothing is renamed.
  const WeightImport p = map_weights(partly, *dst);
  EXPECT_TRUE(p.notes.empty());
  EXPECT_EQ(p.dropped.size(), partly.size() - 1);
}

TEST(Fcn8sVgg16, TorchvisionVgg16ImportsWithFcLayersAsConvolutions) {
  auto src = create_model("fcn8s-vgg16", {.num_classes = 19, .initialize = false});
  fill_distinct(*src);
  const auto st = src->state_dict();
  weights::TensorMap tv = testing::torchvision_vgg16_layout(st);
  auto dst = create_model("fcn8s-vgg16", {.num_classes = 19, .initialize = false});
  const WeightImport r = import_weights(tv, *dst);
  EXPECT_EQ(r.layout, "torchvision-vgg16");
  EXPECT_EQ(r.input_convention, "torchvision");
  EXPECT_EQ(r.dropped.size(), 2u);
  CBST_EXPECT_CLOSE("fc6", dst->state_dict().at("fc6.weight"), st.at("fc6.weight"), 0.0, 0.0);
  CBST_EXPECT_CLOSE("conv3_2", dst->state_dict().at("conv3_2.bias"), st.at("conv3_2.bias"), 0.0, 0.0);
  // A file with the wrong fc7 shape is refused with every mismatch named.
  tv.set("classifier.3.weight", Tensor::zeros({4096, 100}));
  try {
    import_weights(tv, *dst);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("classifier.3.weight -> fc7.weight"), std::string::npos) << e.what();
  }
}

TEST(Fcn8sVgg16, CaffeVgg16ImportsWithLegacyFourDimensionalFcBlobs) {
  // VGG_ILSVRC_16_layers.caffemodel as our reader names it: <layer>.weight/.bias, legacy
  // 4-D blob shapes (an InnerProduct weight is (1, 1, out, in)), plus fc8 and a scale layer.
  auto src = create_model("fcn8s-vgg16", {.num_classes = 19, .initialize = false});
  fill_distinct(*src);
  const auto st = src->state_dict();
  weights::TensorMap caffe;
  caffe.format = "caffemodel";
  for (auto& [name, t] : st)
    if (name.rfind("conv", 0) == 0) caffe.set(name, t);
  caffe.set("fc6.weight", st.at("fc6.weight").reshape({1, 1, 4096, 25088}));
  caffe.set("fc6.bias", st.at("fc6.bias").reshape({1, 1, 1, 4096}));
  caffe.set("fc7.weight", st.at("fc7.weight").reshape({1, 1, 4096, 4096}));
  caffe.set("fc7.bias", st.at("fc7.bias").reshape({1, 1, 1, 4096}));
  caffe.set("fc8.weight", Tensor::zeros({1, 1, 1000, 4096}));
  caffe.set("fc8.bias", Tensor::zeros({1, 1, 1, 1000}));
  auto dst = create_model("fcn8s-vgg16", {.num_classes = 19, .initialize = false});
  const WeightImport r = import_weights(caffe, *dst);
  EXPECT_EQ(r.layout, "caffe-vgg16");
  EXPECT_EQ(r.input_convention, "caffe");
  EXPECT_EQ(r.dropped, (std::vector<std::string>{"fc8.bias", "fc8.weight"}));
  // The score layers and the (fixed) upsampling keep their initialisation.
  EXPECT_EQ(r.not_covered.size(), 9u);
  CBST_EXPECT_CLOSE("fc6", dst->state_dict().at("fc6.weight"), st.at("fc6.weight"), 0.0, 0.0);
  CBST_EXPECT_CLOSE("fc7 bias", dst->state_dict().at("fc7.bias"), st.at("fc7.bias"), 0.0, 0.0);
  CBST_EXPECT_CLOSE("conv5_3", dst->state_dict().at("conv5_3.weight"), st.at("conv5_3.weight"), 0.0, 0.0);
}

// Issue 12: pytorch-fcn's FCN8s (staged, fcn8s_from_caffe.pth) runs score_pool4(pool4) and
// score_pool3(pool3); FCN8sAtOnce runs them on 0.01·pool4 and 0.0001·pool3. So the staged
// net equals the at-once net whose two skip score weights are scaled by 0.01 and 0.0001.
TEST(Fcn8sVgg16Slow, StagedEqualsAtOnceWithItsSkipScoreWeightsScaled) {
  auto at_once = create_model("fcn8s-vgg16", {.num_classes = 3, .seed = 3});
  auto staged = create_model("fcn8s-vgg16-staged", {.num_classes = 3, .initialize = false});
  EXPECT_EQ(staged->name(), "fcn8s-vgg16-staged");
  std::map<std::string, Tensor> state = at_once->state_dict();
  // Score layers start at zero; give the skips something to contribute.
  for (const char* n : {"score_fr.weight", "score_pool4.weight", "score_pool3.weight"})
    state[n] = rand_uniform(state.at(n).shape(), -1, 1);
  at_once->load_state_dict(state, true);
  staged->load_state_dict(state, true);
  at_once->eval();
  staged->eval();
  NoGradGuard guard;
  const Tensor x = rand_uniform({1, 3, 21, 26}, -100, 100);
  const Tensor want = at_once->forward(x);
  const Tensor unscaled = staged->forward(x);
  std::map<std::string, Tensor> scaled = state;
  scaled["score_pool4.weight"] = mul(state.at("score_pool4.weight"), 0.01);
  scaled["score_pool3.weight"] = mul(state.at("score_pool3.weight"), 0.0001);
  staged->load_state_dict(scaled, true);
  // (0.01·w)·x against w·(0.01·x): the same sums, each product rounded differently in f32.
  CBST_EXPECT_CLOSE("staged with scaled skips", staged->forward(x), want, 1e-4, 1e-4);
  double gap = 0;
  const std::vector<float> a = want.to_vector<float>(), b = unscaled.to_vector<float>();
  for (size_t i = 0; i < a.size(); ++i) gap = std::max(gap, double(std::fabs(a[i] - b[i])));
  EXPECT_GT(gap, 1e-3) << "the same weights must give other logits in the other variant";
}

// Issue 12: the names cannot tell the two pytorch-fcn nets apart, so the import says which one
// the model named assumes; a Caffe FCN can be told apart (the at-once net keeps its Scale
// layers) and is refused by the other variant.
TEST(WeightImport, Fcn8sImportSaysWhichVariantItAssumes) {
  auto at_once = create_model("fcn8s-vgg16", {.num_classes = 3, .initialize = false});
  weights::TensorMap fcn;  // pytorch-fcn: our names, no metadata
  for (auto& [name, t] : at_once->state_dict()) fcn.set(name, t);
  const WeightImport a = map_weights(fcn, *at_once);
  EXPECT_EQ(a.layout, "pytorch-fcn");
  ASSERT_EQ(a.notes.size(), 1u);
  EXPECT_NE(a.notes[0].find("assuming the at-once FCN8s (FCN8sAtOnce, fcn8s-atonce_from_caffe.pth"),
            std::string::npos) << a.notes[0];
  EXPECT_NE(a.notes[0].find("for fcn8s_from_caffe.pth use --model fcn8s-vgg16-staged"), std::string::npos);
  auto staged = create_model("fcn8s-vgg16-staged", {.num_classes = 3, .initialize = false});
  const WeightImport s = map_weights(fcn, *staged);
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_NE(s.notes[0].find("assuming pytorch-fcn's staged FCN8s (fcn8s_from_caffe.pth"), std::string::npos)
      << s.notes[0];
  EXPECT_TRUE(s.not_covered.empty());

  weights::TensorMap caffe = fcn;
  caffe.format = "caffemodel";
  try {
    map_weights(caffe, *at_once);
    FAIL() << "a Caffe FCN without scale layers is the staged net";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("use --model fcn8s-vgg16-staged"), std::string::npos) << e.what();
  }
  EXPECT_EQ(map_weights(caffe, *staged).notes.size(), 1u);
  caffe.set("scale_pool4.weight", Tensor::full({512}, 0.01));
  caffe.set("scale_pool3.weight", Tensor::full({256}, 0.0001));
  try {
    map_weights(caffe, *staged);
    FAIL() << "scale layers mark the at-once net";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("use --model fcn8s-vgg16"), std::string::npos) << e.what();
  }
  const WeightImport c = map_weights(caffe, *at_once);
  EXPECT_EQ(c.dropped, (std::vector<std::string>{"scale_pool3.weight", "scale_pool4.weight"}));
  ASSERT_EQ(c.notes.size(), 1u);
  EXPECT_NE(c.notes[0].find("mark the at-once FCN8s"), std::string::npos) << c.notes[0];

  // A VGG16 backbone (no score layers) fits both; nothing to say.
  weights::TensorMap vgg = fcn;
  for (const char* n : {"score_fr", "score_pool4", "score_pool3"})
    for (const char* p : {".weight", ".bias"}) vgg.erase(std::string(n) + p);
  EXPECT_TRUE(map_weights(vgg, *staged).notes.empty());
}

// timm's vgg16.tv_in1k keeps torchvision's features and names fc6/fc7 pre_logits.fc1/fc2,
// already shaped as convolutions; a features-only file leaves fc6/fc7 uncovered, and those
// are outside FCN8s's head, so load_model refuses it unless allowed.
TEST(Fcn8sVgg16, TimmVgg16ImportsAndAFeaturesOnlyFileNamesWhatItLacks) {
  auto src = create_model("fcn8s-vgg16", {.num_classes = 19, .initialize = false});
  fill_distinct(*src);
  const auto st = src->state_dict();
  weights::TensorMap timm = testing::torchvision_vgg16_layout(st);
  timm.erase("classifier.0.weight");
  timm.erase("classifier.0.bias");
  timm.erase("classifier.3.weight");
  timm.erase("classifier.3.bias");
  timm.erase("classifier.6.weight");
  timm.erase("classifier.6.bias");
  weights::TensorMap features = timm;
  timm.set("pre_logits.fc1.weight", st.at("fc6.weight"));
  timm.set("pre_logits.fc1.bias", st.at("fc6.bias"));
  timm.set("pre_logits.fc2.weight", st.at("fc7.weight"));
  timm.set("pre_logits.fc2.bias", st.at("fc7.bias"));
  timm.set("head.fc.weight", Tensor::zeros({1000, 4096}));
  timm.set("head.fc.bias", Tensor::zeros({1000}));
  auto dst = create_model("fcn8s-vgg16", {.num_classes = 19, .initialize = false});
  const WeightImport r = import_weights(timm, *dst);
  EXPECT_EQ(r.layout, "timm-vgg16");
  EXPECT_EQ(r.input_convention, "torchvision");
  EXPECT_EQ(r.dropped, (std::vector<std::string>{"head.fc.bias", "head.fc.weight"}));
  EXPECT_TRUE(r.not_covered_trunk.empty());
  CBST_EXPECT_CLOSE("fc6", dst->state_dict().at("fc6.weight"), st.at("fc6.weight"), 0.0, 0.0);
  CBST_EXPECT_CLOSE("fc7", dst->state_dict().at("fc7.bias"), st.at("fc7.bias"), 0.0, 0.0);

  const WeightImport f = map_weights(features, *dst);
  EXPECT_EQ(f.layout, "torchvision-vgg16");
  EXPECT_EQ(f.not_covered_trunk, (std::vector<std::string>{"fc6.bias", "fc6.weight", "fc7.bias", "fc7.weight"}));
  try {
    check_import_complete(f, *dst, "vgg16_features.pth", {});
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("vgg16_features.pth (layout torchvision-vgg16) leaves 4 tensors of fcn8s-vgg16 "
                       "uninitialised: fc6 (bias, weight), fc7 (bias, weight)"),
              std::string::npos) << msg;
    EXPECT_NE(msg.find("--allow-partial"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_NO_THROW(check_import_complete(f, *dst, "vgg16_features.pth", {.allow_partial = true}));
}

TEST(WeightImport, TheClassCountComesFromTheFilesClassifier) {
  std::string where;
  weights::TensorMap m;
  m.set("conv1_1.weight", Tensor::zeros({64, 3, 3, 3}));
  EXPECT_EQ(classes_in_weights(m), 0) << "a backbone has no classifier";
  m.set("score_fr.weight", Tensor::zeros({21, 4096, 1, 1}));
  EXPECT_EQ(classes_in_weights(m, &where), 21);
  EXPECT_EQ(where, "classifier score_fr.weight [21, 4096, 1, 1]");
  weights::TensorMap ours;
  ours.set("module.classifier.weight", Tensor::zeros({16, 512, 3, 3}));
  EXPECT_EQ(classes_in_weights(ours), 16);
  ours.metadata = {{"model", "resnet38"}, {"num_classes", "19"}};
  EXPECT_EQ(classes_in_weights(ours, &where), 19) << "a checkpoint's record comes first";
  EXPECT_EQ(where, "metadata (num_classes 19)");
  weights::TensorMap mx;
  mx.set("arg:linear1000_weight", Tensor::zeros({1000, 4096}));
  EXPECT_EQ(classes_in_weights(mx), 0) << "ImageNet's classifier is not a segmentation head";
  mx.set("arg:linear19_weight", Tensor::zeros({19, 512, 3, 3}));
  EXPECT_EQ(classes_in_weights(mx), 19);
}

TEST(Models, CheckpointOfTheWrongClassCountListsEveryMismatch) {
  auto m = create_model("small-fcn", {.num_classes = 19});
  const fs::path dir = temp_dir("mismatch");
  weights::save_checkpoint((dir / "m.safetensors").string(), model_checkpoint(*m, "torchvision"));
  auto other = create_model("small-fcn", {.num_classes = 16});
  std::map<std::string, Tensor> state;
  for (auto& [n, t] : weights::load_checkpoint((dir / "m.safetensors").string())) state[n] = t;
  try {
    other->load_state_dict(state);
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("classifier.weight (checkpoint [19, 64, 1, 1], model [16, 64, 1, 1])"), std::string::npos) << msg;
    EXPECT_NE(msg.find("classifier.bias"), std::string::npos) << msg;
  }
  fs::remove_all(dir);
}

TEST(Models, CheckpointsReportTheInputConventionTheyRecord) {
  auto m = create_model("small-fcn", {.num_classes = 5});
  const fs::path dir = temp_dir("convention");
  const std::string path = (dir / "m.safetensors").string();
  // small-fcn's own convention is torchvision; this checkpoint says its weights want caffe.
  weights::save_checkpoint(path, model_checkpoint(*m, "caffe"));
  std::string convention;
  load_model_checkpoint(path, "small-fcn", &convention);
  EXPECT_EQ(convention, "caffe");
  weights::TensorMap bare = weights::load_checkpoint(path);
  bare.metadata.erase("input_convention");
  weights::save_checkpoint(path, bare);
  load_model_checkpoint(path, "small-fcn", &convention);
  EXPECT_EQ(convention, "torchvision") << "the model's own when the file records none";
  fs::remove_all(dir);
}

TEST(Models, UnknownModelNamesListTheKnownOnes) {
  try {
    create_model("vgg19");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fcn8s-vgg16, fcn8s-vgg16-staged, resnet38, small-deeplabv3plus, small-fcn"),
              std::string::npos)
        << e.what();
  }
}

// Full-size models built, saved, reloaded and run on the CPU at a small input.
class ModelsSlow : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelsSlow, FullSizeModelSavesReloadsAndRunsOnTheCpu) {
  auto m = create_model(GetParam(), {.num_classes = 19, .seed = 4});
  m->eval();
  const fs::path dir = temp_dir(GetParam());
  const std::string path = (dir / "model.safetensors").string();
  weights::save_checkpoint(path, model_checkpoint(*m, m->input_convention()));
  auto back = load_model_checkpoint(path, GetParam());
  back->eval();
  NoGradGuard guard;
  const Tensor x = rand_uniform({1, 3, 41, 47}, -1, 1);
  const Tensor y = m->forward(x);
  EXPECT_EQ(y.shape(), (Shape{1, 19, 41, 47}));
  CBST_EXPECT_CLOSE(GetParam() + " reloaded", back->forward(x), y, 0.0, 0.0);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Models, ModelsSlow, ::testing::Values("fcn8s-vgg16", "resnet38", "small-deeplabv3plus", "small-fcn"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

class ModelsCuda : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelsCuda, ForwardMatchesTheCpu) {
  CBST_REQUIRE_CUDA();
  set_tf32_enabled(false);  // compare FP32 with FP32
  auto m = create_model(GetParam(), {.num_classes = 19, .seed = 4});
  m->eval();
  NoGradGuard guard;
  const Tensor x = rand_uniform({1, 3, 41, 47}, -1, 1);
  const Tensor cpu = m->forward(x);
  m->to(Device::cuda());
  const Tensor gpu = m->forward(x.to(Device::cuda()));
  // Deep stacks of f32 convolutions summed in different orders: relative 1e-3 of the logits.
  CBST_EXPECT_CLOSE(GetParam() + " cuda", gpu, cpu, 1e-3, 1e-3);
  set_tf32_enabled(true);
}

INSTANTIATE_TEST_SUITE_P(Models, ModelsCuda, ::testing::Values("fcn8s-vgg16", "resnet38", "small-deeplabv3plus", "small-fcn"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace cbst
