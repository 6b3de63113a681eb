// Issue 12, through the `cbst` binary: weight files that leave trained layers uninitialised
// (refused by train, adapt, eval, predict, pseudolabel and weights convert unless
// --allow-partial), --classes taken from the file's classifier (a different explicit count
// names both), the default class count per dataset, a split named once (KIND=PATH:SPLIT or
// --split), `pseudolabel` from a model run, the FCN8s variant a Caffe file shows, defaults in
// every --help and ranges that print readable bounds.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/image.h"
#include "data/label_map.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "models/weight_import.h"
#include "selftrain/inference.h"
#include "selftrain/pseudo_labels.h"
#include "selftrain/training_setup.h"
#include "tests/tools/cli_runner.h"
#include "tests/tools/tiny_cityscapes.h"
#include "tests/weights/weights_fixtures.h"
#include "weights/load_weights.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;
using testing::run_cbst;

constexpr int kWidth = 40, kHeight = 30, kImages = 2;

class ModelWeightsCommands : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("cbst_model_weights_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ASSERT_TRUE(fs::exists(testing::cbst_binary())) << "build the `cbst` target first";
    stems_ = testing::write_tiny_cityscapes_val(dir_ / "cs", kWidth, kHeight, kImages);
  }
  void TearDown() override { fs::remove_all(dir_); }

  int run(const std::string& args) {
    const testing::CliResult r = run_cbst(args, (dir_ / "log.txt").string());
    output_ = r.output;
    return r.exit_code;
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string cs() const { return "cityscapes=" + path("cs"); }

  // A state_dict written by another program: our names, no cbst metadata, `drop` left out.
  std::string foreign_weights(const std::string& name, int64_t classes, const std::string& drop) {
    auto model = create_model("small-fcn", {.num_classes = classes, .seed = 5});
    weights::TensorMap m;
    for (auto& [n, t] : model->state_dict())
      if (drop.empty() || n.rfind(drop + ".", 0) != 0) m.set(n, t);
    weights::save_checkpoint(path(name), m);
    return path(name);
  }
  // The first layer of small-fcn outside its head (its classifier), and how many of its
  // tensors a file must hold (batch norm's num_batches_tracked is not one).
  static std::pair<std::string, int> first_trunk_layer() {
    auto model = create_model("small-fcn", {.num_classes = 19, .initialize = false});
    std::string layer;
    int tensors = 0;
    for (auto& [n, t] : model->state_dict()) {
      if (layer.empty() && n.rfind("classifier", 0) != 0) layer = n.substr(0, n.rfind('.'));
      if (!layer.empty() && n.rfind(layer + ".", 0) == 0 && n.find("num_batches_tracked") == std::string::npos)
        ++tensors;
    }
    return {layer, tensors};
  }
  void expect_one_line_error(int code, const std::string& fragment) {
    EXPECT_EQ(code, 1) << output_;
    EXPECT_EQ(output_.rfind("cbst: error: ", 0), 0u) << output_;
    EXPECT_EQ(std::count(output_.begin(), output_.end(), '\n'), 1) << output_;
    EXPECT_NE(output_.find(fragment), std::string::npos) << fragment << "\n" << output_;
  }

  fs::path dir_;
  std::vector<std::string> stems_;
  std::string output_;
};

TEST_F(ModelWeightsCommands, PartialWeightsAreRefusedWhereverTheyAreImportedUnlessAllowed) {
  const auto [layer, tensors] = first_trunk_layer();
  ASSERT_FALSE(layer.empty());
  const std::string partial = foreign_weights("partial.safetensors", 19, layer);
  const std::string missing =
      "leaves " + std::to_string(tensors) + " tensors of small-fcn uninitialised: " + layer + " (";
  const std::vector<std::string> commands = {
      "train --data " + cs() + ":val --model small-fcn --epochs 1 --batch 1 --run " + path("train") + " --init " + partial,
      "adapt --source " + cs() + ":val --target " + cs() + " --target-split val --model small-fcn --rounds 1 "
          "--epochs-per-round 1 --run " + path("adapt") + " --init " + partial,
      "eval --data " + cs() + " --split val --model small-fcn --checkpoint " + partial,
      "predict --data " + cs() + ":val --model small-fcn --out " + path("pred") + " --checkpoint " + partial,
      "pseudolabel --data " + cs() + ":val --model small-fcn --out " + path("labels") + " --checkpoint " + partial,
      "weights convert " + partial + " " + path("converted.safetensors") + " --model small-fcn",
  };
  for (const std::string& c : commands) {
    SCOPED_TRACE(c);
    expect_one_line_error(run(c), missing);
    EXPECT_NE(output_.find("pass --allow-partial"), std::string::npos) << output_;
  }
  for (const char* left : {"train", "adapt", "pred", "labels", "converted.safetensors"})
    EXPECT_FALSE(fs::exists(dir_ / left)) << left << " was left behind by a refused command";

  // Allowed: the layer keeps its initialisation, and the log says which.
  ASSERT_EQ(run(commands[0] + " --allow-partial"), 0) << output_;
  EXPECT_NE(output_.find("(--allow-partial: " + layer + " ("), std::string::npos) << output_;
  EXPECT_NE(output_.find("cbst train: 1 epoch on cpu"), std::string::npos) << output_;
  ASSERT_EQ(run(commands[2] + " --allow-partial"), 0) << output_;
  EXPECT_NE(output_.find("mIoU19"), std::string::npos) << output_;
  ASSERT_EQ(run(commands[5] + " --allow-partial"), 0) << output_;

  // Without its head a file is a backbone: training starts the head from its initialisation,
  // but inference would be a random classifier's.
  const std::string backbone = foreign_weights("backbone.safetensors", 19, "classifier");
  EXPECT_EQ(run("weights convert " + backbone + " " + path("b.safetensors") + " --model small-fcn"), 0) << output_;
  expect_one_line_error(run("eval --data " + cs() + ":val --model small-fcn --checkpoint " + backbone),
                        "uninitialised: classifier (bias, weight), its head");
  EXPECT_EQ(run("eval --data " + cs() + ":val --model small-fcn --allow-partial --checkpoint " + backbone), 0)
      << output_;
}

TEST_F(ModelWeightsCommands, ClassesComeFromTheFileAndADifferentCountIsRefusedNamingBoth) {
  const std::string f16 = foreign_weights("f16.safetensors", 16, "");
  ASSERT_EQ(run("weights convert " + f16 + " " + path("c16.safetensors") + " --model small-fcn"), 0) << output_;
  EXPECT_NE(output_.find("small-fcn, 16 classes"), std::string::npos) << output_;
  EXPECT_EQ(weights::load_checkpoint(path("c16.safetensors")).metadata.at("num_classes"), "16");

  expect_one_line_error(
      run("eval --data " + cs() + ":val --model small-fcn --classes 19 --checkpoint " + f16),
      "--classes 19 does not match " + f16 + ", whose classifier classifier.weight [16, 64, 1, 1] gives 16 classes");
  expect_one_line_error(run("eval --data " + cs() + ":val --classes 19 --checkpoint " + path("c16.safetensors")),
                        "whose metadata (num_classes 16) gives 16 classes");
  // No --classes: 16 from the file, for training too.
  ASSERT_EQ(run("train --data " + cs() + ":val --model small-fcn --epochs 1 --batch 1 --init " + f16 + " --run " + path("t16")),
            0)
      << output_;
  EXPECT_NE(output_.find("small-fcn, 16 classes (the file's)"), std::string::npos) << output_;
  EXPECT_EQ(weights::load_checkpoint(path("t16/checkpoints/final.safetensors")).metadata.at("num_classes"), "16");
}

// Without weights to say otherwise, SYNTHIA data means 16 classes (the SYNTHIA → Cityscapes
// protocol), as `cbst priors` and `cbst eval` already assumed; other data 19.
TEST_F(ModelWeightsCommands, SynthiaDataTrainsSixteenClassesByDefault) {
  fs::create_directories(dir_ / "syn/RGB");
  fs::create_directories(dir_ / "syn/GT/LABELS");
  for (int i = 0; i < 2; ++i) {
    const std::string stem = "000000" + std::to_string(i);
    data::Image im = data::Image::blank(kWidth, kHeight, 3, uint8_t(60 * i + 30));
    data::write_png(path("syn/RGB/" + stem + ".png"), im);
    data::PngWriteSpec spec{.width = kWidth, .height = kHeight, .channels = 3, .bit_depth = 16};
    for (int p = 0; p < kWidth * kHeight; ++p) {
      spec.samples16.push_back(uint16_t(p % 3 == 0 ? 3 : 8));  // road, car (SYNTHIA ids)
      spec.samples16.push_back(0);
      spec.samples16.push_back(0);
    }
    data::write_png(path("syn/GT/LABELS/" + stem + ".png"), spec);
  }
  ASSERT_EQ(run("train --data synthia=" + path("syn") + " --model small-fcn --epochs 1 --batch 1 --run " + path("s")), 0)
      << output_;
  EXPECT_NE(output_.find("small-fcn, 16 classes, random initialisation"), std::string::npos) << output_;
  EXPECT_EQ(weights::load_checkpoint(path("s/checkpoints/final.safetensors")).metadata.at("num_classes"), "16");
}

TEST_F(ModelWeightsCommands, ASplitIsNamedOnceInTheSpecOrWithSplit) {
  auto model = create_model("small-fcn", {.num_classes = 19, .seed = 5});
  const std::string ckpt = path("m.safetensors");
  weights::save_checkpoint(ckpt, model_checkpoint(*model, model->input_convention()));
  ASSERT_EQ(run("eval --data " + cs() + " --split val --checkpoint " + ckpt), 0) << output_;
  const std::string with_flag = output_.substr(output_.find("mIoU19"));
  ASSERT_EQ(run("eval --data " + cs() + ":val --checkpoint " + ckpt), 0) << output_;
  EXPECT_EQ(output_.substr(output_.find("mIoU19")), with_flag);
  ASSERT_EQ(run("eval --data " + cs() + ":val --split val --checkpoint " + ckpt), 0) << output_;
  expect_one_line_error(run("eval --data " + cs() + ":val --split train --checkpoint " + ckpt),
                        "names split 'val' but --split is 'train'; give the split once");
  // config.toml writes every option; what it holds reads back without a contradicting split.
  ASSERT_EQ(run("train --data " + cs() + ":val --model small-fcn --epochs 1 --batch 1 --run " + path("t1")), 0)
      << output_;
  EXPECT_NE(output_.find("cityscapes (val)"), std::string::npos) << output_;
  ASSERT_EQ(run("--config " + path("t1/config.toml") + " train --run " + path("t2")), 0) << output_;
  EXPECT_NE(output_.find("cityscapes (val)"), std::string::npos) << output_;
}

// `cbst pseudolabel` from a model run labels as one round of `cbst adapt` does: the library's
// thresholds and labels over the probabilities of every image, as PNGs, with a table.
TEST_F(ModelWeightsCommands, PseudolabelFromAModelRunWritesTheLibrarysLabelsAndATableWithClassNames) {
  auto model = create_model("small-fcn", {.num_classes = 19, .seed = 5});
  const std::string ckpt = path("m.safetensors");
  weights::save_checkpoint(ckpt, model_checkpoint(*model, model->input_convention()));
  const fs::path out = dir_ / "labels";
  ASSERT_EQ(run("pseudolabel --checkpoint " + ckpt + " --data " + cs() + ":val --method cbst --portion 0.5 "
                "--pool-stride 2 --previews 1 --out " + out.string()),
            0)
      << output_;
  EXPECT_NE(output_.find("road"), std::string::npos) << output_;
  EXPECT_NE(output_.find("bicycle"), std::string::npos) << output_;
  EXPECT_NE(output_.find("labelled"), std::string::npos) << output_;
  EXPECT_NE(output_.find("of them correct"), std::string::npos) << "ground truth is there: " << output_;

  std::vector<Tensor> probs;
  {
    NoGradGuard no_grad;
    model->eval();
    for (const std::string& stem : stems_) {
      const data::Image im = data::read_image_rgb(path("cs/leftImg8bit/val/ulm/" + stem + "_leftImg8bit.png"));
      probs.push_back(predict_probabilities(*model, image_tensor(im, model->input_convention(), Device::cpu())));
    }
  }
  const Tensor all = concat(probs, 0);
  const LabelSize size{kHeight, kWidth};
  const ClassThresholds thr =
      class_thresholds(all, Tensor(), {.policy = ThresholdPolicy::cbst, .portion = 0.5, .pool_stride = 2,
                                       .label_size = size});
  const std::vector<uint8_t> want = pseudo_labels(all, Tensor(), thr.thresholds, {.label_size = size})
                                        .labels.to_vector<uint8_t>();
  for (size_t i = 0; i < stems_.size(); ++i) {
    const data::RawLabels got = data::read_label_values((out / (stems_[i] + ".png")).string());
    ASSERT_EQ(got.values.size(), size_t(kWidth * kHeight));
    for (size_t p = 0; p < got.values.size(); ++p)
      ASSERT_EQ(int(got.values[p]), int(want[i * got.values.size() + p])) << stems_[i] << " pixel " << p;
  }
  EXPECT_TRUE(fs::exists(out / (stems_[0] + "_color.png")));
  EXPECT_FALSE(fs::exists(out / (stems_[1] + "_color.png"))) << "--previews 1";
  std::ifstream f(out / "thresholds.json");
  const nlohmann::json record = nlohmann::json::parse(f);
  EXPECT_EQ(record.at("classes").at(0), "road");
  EXPECT_EQ(record.at("method"), "cbst");
  EXPECT_EQ(record.at("pool_stride"), 2);
  EXPECT_EQ(record.at("thresholds").size(), 19u);
  EXPECT_FLOAT_EQ(record.at("thresholds").at(13).get<float>(), thr.thresholds.to_vector<float>()[13]);

  // One source of probabilities, and the options of the other refused by name.
  expect_one_line_error(run("pseudolabel --checkpoint " + ckpt + " --data " + cs() + ":val --method cbst-sp --out " +
                            path("x")),
                        "--method cbst-sp needs a spatial prior");
  expect_one_line_error(run("pseudolabel --checkpoint " + ckpt + " --data " + cs() + ":val --label-size 4x4 --out " +
                            path("x")),
                        "--label-size applies to --probs only");
  expect_one_line_error(run("pseudolabel --checkpoint " + ckpt + " --out " + path("x")),
                        "needs both --checkpoint FILE and --data KIND=PATH");
}

// A Caffe FCN shows its variant: the at-once net keeps its fixed scale_pool4/scale_pool3
// layers. Loading it as the staged net is refused before any shape is compared.
TEST_F(ModelWeightsCommands, ACaffeAtOnceFcnIsRefusedAsTheStagedNet) {
  namespace fx = weights::testing;
  fx::ProtoWriter net;
  net.string_field(1, "voc-fcn8s-atonce");
  for (const auto& [name, type] : std::vector<std::pair<std::string, std::string>>{
           {"score_pool4", "Convolution"}, {"scale_pool4", "Scale"}}) {
    fx::ProtoWriter layer;
    layer.string_field(1, name);
    layer.string_field(2, type);
    layer.bytes_field(7, fx::caffe_blob({2}, {0.01f, 0.01f}, false, true));
    net.bytes_field(100, layer.b);
  }
  std::ofstream(path("fcn.caffemodel"), std::ios::binary)
      .write(reinterpret_cast<const char*>(net.b.data()), std::streamsize(net.b.size()));
  expect_one_line_error(run("weights convert " + path("fcn.caffemodel") + " " + path("o.safetensors") +
                            " --model fcn8s-vgg16-staged"),
                        "scale_pool4/scale_pool3 layers mark the at-once FCN8s (voc-fcn8s-atonce), not the staged "
                        "one; use --model fcn8s-vgg16");
}

// Every option that takes a value shows its default in --help, or says what its absence
// means, or is an input that is simply not used when left out.
TEST_F(ModelWeightsCommands, EveryHelpShowsTheDefaults) {
  const std::vector<std::string> commands = {
      "synth", "train", "adapt", "eval", "predict", "priors", "pseudolabel", "demo", "weights inspect",
      "weights convert", "bench gemm", "bench conv", "bench loader", "bench labeling", "bench train-step",
      "bench layers", "bench ops"};
  // Inputs and outputs that are off unless given.
  const std::vector<std::string> optional = {
      "--list", "--init", "--eval", "--prior", "--json", "--predictions", "--checkpoint", "--model", "--probs",
      "--data", "--save-predictions", "--filter", "--prior-size", "--label-size", "--crop", "--protocol",
      "--input-convention", "--device"};
  for (const std::string& c : commands) {
    ASSERT_EQ(run(c + " --help"), 0) << c << "\n" << output_;
    std::istringstream lines(output_);
    std::string line, option, text;
    auto check = [&] {
      if (option.empty()) return;
      const size_t space = option.find(' ', 2);
      const std::string name = option.substr(2, space == std::string::npos ? std::string::npos : space - 2);
      const bool takes_value = option.find(" TEXT") != std::string::npos || option.find(" INT") != std::string::npos ||
                               option.find(" FLOAT") != std::string::npos || option.find(" UINT") != std::string::npos;
      const bool ok = !takes_value || option.find('=') != std::string::npos ||
                      option.find("REQUIRED") != std::string::npos || (option + text).find("default") != std::string::npos ||
                      std::find(optional.begin(), optional.end(), name) != optional.end();
      EXPECT_TRUE(ok) << "cbst " << c << " " << name << " shows no default: " << option << text;
    };
    while (std::getline(lines, line)) {
      if (line.rfind("  --", 0) == 0) {
        check();
        option = line;
        text.clear();
      } else if (line.rfind("      ", 0) == 0) {
        text += line;
      }
    }
    check();
  }
}

TEST_F(ModelWeightsCommands, RangesPrintReadableBounds) {
  EXPECT_EQ(run("train --data " + cs() + " --run " + path("r") + " --batch 0"), 2);
  EXPECT_EQ(output_, "cbst: error: --batch: 0 is out of range: it must lie in 1..4096; see `cbst train --help`\n");
  EXPECT_EQ(run("train --data " + cs() + " --run " + path("r") + " --lr -1"), 2);
  EXPECT_NE(output_.find("--lr: -1 is out of range: it must be greater than 0;"), std::string::npos) << output_;
  EXPECT_EQ(run("adapt --source " + cs() + " --target " + cs() + " --run " + path("r") + " --mine-prob 1.5"), 2);
  EXPECT_NE(output_.find("--mine-prob: 1.5 is out of range: it must lie in 0..1;"), std::string::npos) << output_;
  EXPECT_EQ(run("train --data " + cs() + " --run " + path("r") + " --log-every 0"), 2);
  EXPECT_NE(output_.find("--log-every: 0 is out of range: it must be at least 1;"), std::string::npos) << output_;
  EXPECT_EQ(output_.find("0.000000"), std::string::npos) << output_;
  EXPECT_FALSE(fs::exists(dir_ / "r"));
}

}  // namespace
}  // namespace cbst
