// `cbst weights convert` end to end: runs the real program on files the tests write (a
// PyTorch zip .pth, safetensors, a hostile pickle, a truncated file), loads what it wrote with
// load_model_checkpoint and compares every tensor with the source. The full-size mappings
// (torchvision VGG16 → fcn8s-vgg16, an MXNet .params → resnet38) write files of 420–550 MB
// and live in the Slow suite.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "models/segmentation_model.h"
#include "models/weight_import.h"
#include "tests/support/weight_layouts.h"
#include "tests/support/expect_close.h"
#include "tests/weights/weights_fixtures.h"
#include "weights/load_weights.h"

namespace cbst {
namespace {

namespace fs = std::filesystem;
namespace fx = weights::testing;

fx::Bytes read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return fx::Bytes(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const fs::path& p, const fx::Bytes& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

fx::Bytes float_bytes(const Tensor& t) {
  const std::vector<float> v = t.to(Device::cpu()).to_vector<float>();
  return fx::to_bytes(v);
}

Shape contiguous_strides(const Shape& shape) {
  Shape s(shape.size(), 1);
  for (int64_t i = int64_t(shape.size()) - 2; i >= 0; --i) s[size_t(i)] = s[size_t(i) + 1] * shape[size_t(i) + 1];
  return s;
}

// A state_dict as torch.save writes it (zip .pth, one storage per tensor); f32 tensors only.
fx::Bytes pth_of(const std::map<std::string, Tensor>& state) {
  std::vector<fx::PickledTensor> tensors;
  std::map<std::string, fx::Bytes> storages;
  for (auto& [name, t] : state) {
    if (t.dtype() != DType::f32) continue;  // num_batches_tracked
    const std::string key = std::to_string(tensors.size());
    tensors.push_back({.name = name, .key = key, .storage_numel = t.numel(), .size = t.shape(),
                       .stride = contiguous_strides(t.shape())});
    storages[key] = float_bytes(t);
  }
  return fx::make_pth_zip(fx::state_dict_pickle(tensors, /*legacy=*/false), storages);
}

// Every tensor of `state` (f32, so BN counters aside) equals the loaded model's, bit for bit.
void expect_state_equal(const std::map<std::string, Tensor>& state, const SegmentationModel& model,
                        const std::vector<std::string>& skip = {}) {
  const auto loaded = model.state_dict();
  for (auto& [name, t] : state) {
    if (t.dtype() != DType::f32 || std::find(skip.begin(), skip.end(), name) != skip.end()) continue;
    ASSERT_TRUE(loaded.count(name)) << name;
    CBST_EXPECT_CLOSE(name, loaded.at(name), t, 0.0, 0.0);
  }
}

class WeightsConvertCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("cbst_weights_convert_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ASSERT_TRUE(fs::exists(cbst_)) << cbst_ << " is missing: build the `cbst` target first";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs `cbst ARGS`; returns the exit code, with stdout in out_ and stderr in err_.
  int run(const std::string& args) {
    const fs::path out = dir_ / "stdout.txt", err = dir_ / "stderr.txt";
    const int status =
        std::system((cbst_.string() + " " + args + " > " + out.string() + " 2> " + err.string()).c_str());
    out_ = slurp(out);
    err_ = slurp(err);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  static std::string slurp(const fs::path& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

  // Exit 1, exactly one line "cbst: error: ..." on stderr containing `fragment`, no output file.
  void expect_one_line_error(int code, const std::string& fragment, const fs::path& output) {
    EXPECT_EQ(code, 1) << out_ << err_;
    EXPECT_EQ(err_.rfind("cbst: error: ", 0), 0u) << err_;
    EXPECT_EQ(std::count(err_.begin(), err_.end(), '\n'), 1) << err_;
    EXPECT_NE(err_.find(fragment), std::string::npos) << err_;
    EXPECT_FALSE(fs::exists(output)) << "a failed conversion left " << output;
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
  fs::path cbst_ = fs::path(CBST_BINARY_DIR) / "tools" / "cbst";
  std::string out_, err_;
};

TEST_F(WeightsConvertCommand, PthStateDictBecomesACheckpointWithEqualTensors) {
  auto source = create_model("small-fcn", {.num_classes = 19, .seed = 3});
  const auto state = source->state_dict();
  write_bytes(dir_ / "in.pth", pth_of(state));

  ASSERT_EQ(run("weights convert " + path("in.pth") + " " + path("out.safetensors") + " --model small-fcn"), 0)
      << out_ << err_;
  EXPECT_NE(out_.find("layout      : cbst"), std::string::npos) << out_;
  EXPECT_NE(out_.find("convention  : torchvision"), std::string::npos) << out_;
  EXPECT_NE(out_.find("dropped     : 0"), std::string::npos) << out_;
  EXPECT_NE(out_.find("not covered : 0"), std::string::npos) << out_;
  EXPECT_TRUE(err_.empty()) << err_;

  auto loaded = load_model_checkpoint(path("out.safetensors"), "small-fcn");
  EXPECT_EQ(loaded->num_classes(), 19);
  expect_state_equal(state, *loaded);
  const weights::TensorMap written = weights::load_checkpoint(path("out.safetensors"));
  EXPECT_EQ(written.metadata.at("input_convention"), "torchvision");
  EXPECT_EQ(written.metadata.at("model"), "small-fcn");
}

TEST_F(WeightsConvertCommand, ReportsDroppedAndUncoveredNamesAndTheConventionOverride) {
  auto source = create_model("small-fcn", {.num_classes = 7, .seed = 3});
  weights::TensorMap in;
  for (auto& [name, t] : source->state_dict())
    if (name.rfind("classifier.", 0) != 0) in.set(name, t);
  in.set("extra.weight", Tensor::zeros({3}));
  weights::save_checkpoint(path("in.safetensors"), in);

  ASSERT_EQ(run("weights convert " + path("in.safetensors") + " " + path("out.safetensors") +
                " --model small-fcn --classes 7 --input-convention caffe --seed 5"),
            0)
      << out_ << err_;
  EXPECT_NE(out_.find("dropped     : 1:\n  extra.weight\n"), std::string::npos) << out_;
  EXPECT_NE(out_.find("not covered : 2:\n  classifier.bias\n  classifier.weight\n"), std::string::npos) << out_;
  EXPECT_NE(out_.find("convention  : caffe (set by --input-convention"), std::string::npos) << out_;

  auto loaded = load_model_checkpoint(path("out.safetensors"), "small-fcn");
  EXPECT_EQ(loaded->num_classes(), 7);
  expect_state_equal(source->state_dict(), *loaded, {"classifier.weight", "classifier.bias"});
  // The uncovered head keeps the initialisation of --seed 5.
  auto fresh = create_model("small-fcn", {.num_classes = 7, .seed = 5});
  CBST_EXPECT_CLOSE("classifier", loaded->state_dict().at("classifier.weight"),
                    fresh->state_dict().at("classifier.weight"), 0.0, 0.0);
  EXPECT_EQ(weights::load_checkpoint(path("out.safetensors")).metadata.at("input_convention"), "caffe");
}

TEST_F(WeightsConvertCommand, ACheckpointKeepsItsClassCountAndConvertsAgain) {
  auto source = create_model("small-fcn", {.num_classes = 5, .seed = 8});
  weights::save_checkpoint(path("in.safetensors"), model_checkpoint(*source, "caffe"));
  ASSERT_EQ(run("weights convert " + path("in.safetensors") + " " + path("out.safetensors") + " --model small-fcn"),
            0)
      << out_ << err_;
  EXPECT_NE(out_.find("small-fcn, 5 classes"), std::string::npos) << out_;
  auto loaded = load_model_checkpoint(path("out.safetensors"));
  EXPECT_EQ(loaded->num_classes(), 5);
  expect_state_equal(source->state_dict(), *loaded);
  EXPECT_EQ(weights::load_checkpoint(path("out.safetensors")).metadata.at("input_convention"), "caffe");
}

TEST_F(WeightsConvertCommand, TruncatedFileIsOneLineError) {
  auto source = create_model("small-fcn", {.num_classes = 19, .seed = 3});
  weights::save_checkpoint(path("full.safetensors"), model_checkpoint(*source, "torchvision"));
  fx::Bytes bytes = read_bytes(dir_ / "full.safetensors");
  bytes.resize(bytes.size() / 2);
  write_bytes(dir_ / "cut.safetensors", bytes);
  const int code = run("weights convert " + path("cut.safetensors") + " " + path("out.safetensors") +
                       " --model small-fcn");
  expect_one_line_error(code, "cut.safetensors", dir_ / "out.safetensors");
  EXPECT_NE(err_.find("truncated"), std::string::npos) << err_;
}

TEST_F(WeightsConvertCommand, MaliciousPickleIsRefusedAndNeverRun) {
  const fs::path marker = dir_ / "pwned";
  fx::PickleWriter p;
  p.proto();
  p.op('c');
  p.w.str("posix\nsystem\n");
  p.str("touch " + marker.string());
  p.op(0x85);  // TUPLE1
  p.op('R');
  p.stop();
  write_bytes(dir_ / "evil.pth", fx::make_pth_zip(p.w.b, {}));
  const int code = run("weights convert " + path("evil.pth") + " " + path("out.safetensors") + " --model small-fcn");
  expect_one_line_error(code, "refused pickle global 'posix.system'", dir_ / "out.safetensors");
  EXPECT_FALSE(fs::exists(marker));
}

TEST_F(WeightsConvertCommand, UnknownFormatIsOneLineError) {
  const std::string text = "this is not a weight file, just some text long enough to look at\n";
  write_bytes(dir_ / "notes.bin", fx::Bytes(text.begin(), text.end()));
  const int code = run("weights convert " + path("notes.bin") + " " + path("out.safetensors") + " --model small-fcn");
  expect_one_line_error(code, "notes.bin", dir_ / "out.safetensors");
}

// Issue 12: the class count comes from the file; asking for another names both numbers.
TEST_F(WeightsConvertCommand, AnotherClassCountThanTheFilesIsRefusedNamingBoth) {
  auto source = create_model("small-fcn", {.num_classes = 19, .seed = 3});
  weights::save_checkpoint(path("in.safetensors"), model_checkpoint(*source, "torchvision"));
  const int code = run("weights convert " + path("in.safetensors") + " " + path("out.safetensors") +
                       " --model small-fcn --classes 16");
  expect_one_line_error(code,
                        "--classes 16 does not match " + path("in.safetensors") +
                            ", whose metadata (num_classes 19) gives 19 classes; drop --classes",
                        dir_ / "out.safetensors");
}

TEST_F(WeightsConvertCommand, MisshapedTensorsAreListedOnOneLine) {
  auto source = create_model("small-fcn", {.num_classes = 19, .seed = 3});
  weights::TensorMap in;  // another program's state_dict: no cbst metadata
  std::vector<std::string> convs;
  for (auto& [name, t] : source->state_dict()) {
    const bool conv = t.dim() == 4 && name.rfind("classifier", 0) != 0;
    in.set(name, conv && convs.size() < 2 ? Tensor::zeros({t.size(0) + 1, t.size(1), t.size(2), t.size(3)}) : t);
    if (conv && convs.size() < 2) convs.push_back(name);
  }
  ASSERT_EQ(convs.size(), 2u);
  weights::save_checkpoint(path("in.safetensors"), in);
  const int code = run("weights convert " + path("in.safetensors") + " " + path("out.safetensors") +
                       " --model small-fcn");
  expect_one_line_error(code, convs[0] + " -> " + convs[0] + ": file [", dir_ / "out.safetensors");
  EXPECT_NE(err_.find(convs[1] + " -> " + convs[1]), std::string::npos) << err_;
  EXPECT_NE(err_.find("hint: check --model and --classes"), std::string::npos) << err_;
}

TEST_F(WeightsConvertCommand, RefusesToOverwriteTheInputAndAnotherModelsCheckpoint) {
  auto source = create_model("small-fcn", {.num_classes = 19, .seed = 3});
  weights::save_checkpoint(path("in.safetensors"), model_checkpoint(*source, "torchvision"));
  const fx::Bytes before = read_bytes(dir_ / "in.safetensors");
  int code = run("weights convert " + path("in.safetensors") + " " + path("in.safetensors") + " --model small-fcn");
  EXPECT_EQ(code, 1);
  EXPECT_NE(err_.find("refusing to overwrite the input"), std::string::npos) << err_;
  EXPECT_EQ(std::count(err_.begin(), err_.end(), '\n'), 1) << err_;
  EXPECT_EQ(read_bytes(dir_ / "in.safetensors"), before);
  // The same file reached through another spelling of its path.
  code = run("weights convert " + path("in.safetensors") + " " + (dir_ / "." / "in.safetensors").string() +
             " --model small-fcn");
  EXPECT_EQ(code, 1) << err_;
  EXPECT_EQ(read_bytes(dir_ / "in.safetensors"), before);

  code = run("weights convert " + path("in.safetensors") + " " + path("out.safetensors") + " --model resnet38");
  expect_one_line_error(code, "is a cbst small-fcn checkpoint, not resnet38", dir_ / "out.safetensors");
}

// ---- full size: the two mappings that matter, through real files (420–550 MB each)

class WeightsConvertSlow : public WeightsConvertCommand {};

TEST_F(WeightsConvertSlow, TorchvisionVgg16BecomesAnFcn8sCheckpoint) {
  auto source = create_model("fcn8s-vgg16", {.num_classes = 19, .seed = 1});
  const auto st = source->state_dict();
  weights::TensorMap tv = testing::torchvision_vgg16_layout(st);
  weights::save_checkpoint(path("vgg16.safetensors"), tv);
  tv = {};

  ASSERT_EQ(run("weights convert " + path("vgg16.safetensors") + " " + path("fcn8s.safetensors") +
                " --model fcn8s-vgg16 --seed 1"),
            0)
      << out_ << err_;
  EXPECT_NE(out_.find("layout      : torchvision-vgg16"), std::string::npos) << out_;
  EXPECT_NE(out_.find("convention  : torchvision\n"), std::string::npos) << out_;
  EXPECT_NE(out_.find("dropped     : 2:\n  classifier.6.bias\n  classifier.6.weight\n"), std::string::npos) << out_;
  // The score layers and the fixed bilinear upsampling are FCN's own.
  for (const char* n : {"score_fr.weight", "score_pool3.bias", "score_pool4.weight", "upscore2.weight",
                        "upscore8.weight", "upscore_pool4.weight"})
    EXPECT_NE(out_.find(std::string("  ") + n + "\n"), std::string::npos) << n << "\n" << out_;
  fs::remove(dir_ / "vgg16.safetensors");

  // Same seed: the uncovered layers initialise as the source's did, so the whole state matches.
  auto loaded = load_model_checkpoint(path("fcn8s.safetensors"), "fcn8s-vgg16");
  expect_state_equal(st, *loaded);
  EXPECT_EQ(weights::load_checkpoint(path("fcn8s.safetensors")).metadata.at("input_convention"), "torchvision");
}

// Issue 12: pytorch-fcn's FCN8s and FCN8sAtOnce have the same names; the import assumes the
// variant --model names, says so, and the checkpoint records it.
TEST_F(WeightsConvertSlow, PytorchFcnFcn8sBecomesTheVariantNamedAndTheOutputSaysWhich) {
  {
    auto source = create_model("fcn8s-vgg16", {.num_classes = 21, .initialize = false});
    weights::TensorMap fcn;  // as pytorch-fcn's state_dict: our names, no metadata
    NoGradGuard guard;
    for (auto& [name, t] : source->state_dict()) {
      Tensor v = t;
      v.fill_(0.5);
      fcn.set(name, t);
    }
    weights::save_checkpoint(path("fcn8s_from_caffe.safetensors"), fcn);
  }
  ASSERT_EQ(run("weights convert " + path("fcn8s_from_caffe.safetensors") + " " + path("staged.safetensors") +
                " --model fcn8s-vgg16-staged"),
            0)
      << out_ << err_;
  EXPECT_NE(out_.find("model       : fcn8s-vgg16-staged, 21 classes"), std::string::npos) << out_;
  EXPECT_NE(out_.find("layout      : pytorch-fcn"), std::string::npos) << out_;
  EXPECT_NE(out_.find("note        : assuming pytorch-fcn's staged FCN8s (fcn8s_from_caffe.pth: unscaled skips)"),
            std::string::npos)
      << out_;
  EXPECT_EQ(weights::load_checkpoint(path("staged.safetensors")).metadata.at("model"), "fcn8s-vgg16-staged");
  fs::remove(dir_ / "staged.safetensors");
  ASSERT_EQ(run("weights convert " + path("fcn8s_from_caffe.safetensors") + " " + path("atonce.safetensors") +
                " --model fcn8s-vgg16"),
            0)
      << out_ << err_;
  EXPECT_NE(out_.find("note        : assuming the at-once FCN8s (FCN8sAtOnce, fcn8s-atonce_from_caffe.pth"),
            std::string::npos)
      << out_;
  EXPECT_NE(out_.find("for fcn8s_from_caffe.pth use --model fcn8s-vgg16-staged"), std::string::npos) << out_;
  EXPECT_EQ(weights::load_checkpoint(path("atonce.safetensors")).metadata.at("model"), "fcn8s-vgg16");
}

TEST_F(WeightsConvertSlow, MxnetParamsBecomeAResNet38Checkpoint) {
  auto source = create_model("resnet38", {.num_classes = 19, .seed = 1});
  const auto st = source->state_dict();
  std::vector<fx::MxArray> arrays;
  for (auto& [name, t] : st) {
    if (t.dtype() != DType::f32 || name.rfind("classifier", 0) == 0 || name.rfind("conv6a", 0) == 0) continue;
    arrays.push_back({.name = resnet38_mxnet_name(name, 19), .type_flag = 0, .shape = t.shape(),
                      .data = float_bytes(t)});
  }
  arrays.push_back({.name = "arg:linear1000_weight", .type_flag = 0, .shape = {1000, 4096},
                    .data = fx::Bytes(size_t(1000) * 4096 * 4, 0)});
  arrays.push_back({.name = "arg:linear1000_bias", .type_flag = 0, .shape = {1000}, .data = fx::Bytes(4000, 0)});
  EXPECT_EQ(arrays.size(), 193u) << "the ImageNet file's array count (models_weights.md §3.3)";
  write_bytes(dir_ / "a1.params", fx::make_mxnet(arrays, /*version=*/2));
  arrays.clear();

  ASSERT_EQ(run("weights convert " + path("a1.params") + " " + path("r38.safetensors") + " --model resnet38"), 0)
      << out_ << err_;
  EXPECT_NE(out_.find("layout      : mxnet-resnet38"), std::string::npos) << out_;
  EXPECT_NE(out_.find("convention  : torchvision\n"), std::string::npos) << out_;
  EXPECT_NE(out_.find("dropped     : 2:\n  arg:linear1000_bias\n  arg:linear1000_weight\n"), std::string::npos)
      << out_;
  EXPECT_NE(out_.find("not covered : 4:\n  classifier.bias\n  classifier.weight\n  conv6a.bias\n  conv6a.weight\n"),
            std::string::npos)
      << out_;
  fs::remove(dir_ / "a1.params");

  auto loaded = load_model_checkpoint(path("r38.safetensors"), "resnet38");
  expect_state_equal(st, *loaded, {"classifier.weight", "classifier.bias", "conv6a.weight", "conv6a.bias"});
}

}  // namespace
}  // namespace cbst
