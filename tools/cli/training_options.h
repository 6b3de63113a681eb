// Command-line options shared by `cbst train` and `cbst adapt`.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "engine/check.h"
#include "engine/cuda_context.h"
#include "engine/dist.h"
#include "selftrain/training_setup.h"
#include "tools/cli/sizes.h"
#include "tools/cli/validators.h"

namespace cbst::cli {

struct TrainingFlags {
  std::string device = "cpu";
  std::string crop;  // "S" or "HxW"
  std::string scales = "1.0";
  bool test_flip = false;
  std::string color_jitter = "0";
  std::string blur = "0";
  std::string precision = "f32";
};

// --precision f32|bf16 (train, adapt, eval, bench train-step).
inline CLI::Option* add_precision_option(CLI::App& cmd, std::string& precision) {
  return cmd.add_option("--precision", precision,
                 "f32, or bf16: mixed precision (convolutions with bf16 operands and f32 accumulation; "
                 "everything else in f32: weights, batch-norm statistics, loss, checkpoints)")
      ->check(CLI::IsMember({"f32", "bf16"}))->capture_default_str();
}

inline void add_training_options(CLI::App& cmd, TrainingOptions& o, TrainingFlags& f) {
  cmd.add_option("--batch", o.batch, "images per batch and process (mpirun -np N: global batch N x this)")
      ->check(cbst::cli::InRange(1, 4096))->capture_default_str();
  cmd.add_option("--crop", f.crop, "training crop: SIZE or HxW (default: whole scaled images)");
  cmd.add_option("--scale-range", [&o](const CLI::results_t& r) {
        return std::sscanf(r[0].c_str(), "%lf,%lf", &o.min_scale, &o.max_scale) == 2 && o.min_scale > 0 &&
               o.max_scale >= o.min_scale;
      }, "random scale MIN,MAX")->type_name("MIN,MAX")->default_str("0.7,1.3");
  cmd.add_flag("!--no-flip", o.flip, "no random horizontal flips");
  cmd.add_option("--resize", o.resize_long_side, "resize images so the long side is this first (0: keep)")
      ->check(cbst::cli::InRange(0, 16384));
  cmd.add_option("--color-jitter", f.color_jitter,
                 "photometric jitter of the labelled source images: B,C,S,H (brightness, contrast, saturation, "
                 "hue as torchvision's ColorJitter), B,C,S,H,P (applied to an image with probability P) or one "
                 "number for B=C=S; 0: off")->capture_default_str();
  cmd.add_option("--blur", f.blur,
                 "random Gaussian blur of the labelled source images: P (probability; sigma 0.15-1.15 px) or "
                 "P,SIGMA_MIN,SIGMA_MAX; 0: off")->capture_default_str();
  cmd.add_option("--lr", o.lr, "learning rate")->check(cbst::cli::Positive())->capture_default_str();
  cmd.add_option("--warmup-iters", o.warmup_iters, "linear learning-rate warm-up over the first N steps (0: none)")
      ->check(cbst::cli::InRange(int64_t(0), int64_t(1) << 40))->capture_default_str();
  cmd.add_option("--rare-class-sampling", o.rare_class_sampling,
                 "probability that a labelled crop is centred on a rare class, P(c) ~ exp((1-f_c)/0.01) (DAFormer's RCS); "
                 "0: off")
      ->check(cbst::cli::InRange(0.0, 1.0))->capture_default_str();
  cmd.add_option("--rare-class-draw", o.rare_class_draw,
                 "rare-class sampling draws first: image (the loader's, then one of its classes) or class (DAFormer's: "
                 "a class over the whole set, then an image holding it)")
      ->check(CLI::IsMember({"image", "class"}))->capture_default_str();
  cmd.add_option("--class-weights", o.class_weights,
                 "cross-entropy: none, or balanced (ENet weights 1/ln(1.02+f) from the training labels)")
      ->check(CLI::IsMember({"none", "balanced"}))->capture_default_str();
  cmd.add_option("--momentum", o.momentum, "SGD momentum")->capture_default_str();
  cmd.add_option("--weight-decay", o.weight_decay, "weight decay (biases: none)")->capture_default_str();
  cmd.add_option("--clip-grad-norm", o.max_grad_norm, "clip the global gradient norm (0: off)");
  cmd.add_option("--log-every", o.log_every, "steps between log lines and metrics.jsonl records")
      ->check(cbst::cli::InRange(int64_t(1), int64_t(1) << 40))->capture_default_str();
  cmd.add_option("--workers", o.workers, "data-loading threads")->check(cbst::cli::InRange(0, 64))->capture_default_str();
  cmd.add_option("--device", f.device, "cpu, cuda or cuda:N (under mpirun, cuda is each rank's own GPU)")
      ->capture_default_str();
  cmd.add_option("--seed", o.seed, "seed of data order, augmentation, dropout and initialisation")->capture_default_str();
  cmd.add_flag("--frozen-bn", o.frozen_bn, "use the batch-norm running statistics while training (ResNet-38)");
  cmd.add_flag("--deterministic", o.deterministic, "deterministic cuDNN/cuBLAS algorithms");
  cmd.add_flag("!--no-overlap-allreduce", o.overlap_allreduce,
               "several ranks: sum the gradients across ranks after backward, not during it (the same result; "
               "can be faster on CPU ranks that share cores)");
  add_precision_option(cmd, f.precision);
  cmd.add_option("--scales", f.scales, "test scales for pseudo-labels and evaluation, e.g. 0.5,0.75,1.0")
      ->capture_default_str()
      ->check(cli::ScaleList());
  cmd.add_flag("--flip", f.test_flip, "also average horizontally flipped predictions");
}

inline std::vector<double> parse_scales(const std::string& text, const char* flag = "--scales") {
  std::vector<double> v;
  CBST_CHECK(read_scale_list(text, v), flag, " '", text, "' is not a list of positive numbers like 0.5,0.75,1.0");
  return v;
}

// Resolves the string flags into `o` and the inference options.
inline void finish_training_options(TrainingOptions& o, const TrainingFlags& f, InferenceOptions& inference) {
  o.device = Device::parse(f.device);
  // One process per GPU: under an MPI launcher, plain "cuda" is the rank's GPU on its host.
  const dist::Communicator& comm = dist::world();
  if (f.device == "cuda" && comm.size() > 1 && cuda_device_count() > 0)
    o.device = Device::cuda(comm.local_rank() % cuda_device_count());
  if (!f.crop.empty()) {
    const Size2 crop = parse_size(f.crop, "--crop", 1, 1 << 16, "512 or 512x1024");
    o.crop_height = crop.height;
    o.crop_width = crop.width;
  }
  o.precision = precision_from_name(f.precision);
  o.color_jitter = data::ColorJitter::parse(f.color_jitter);
  o.blur = data::GaussianBlur::parse(f.blur);
  inference.scales = parse_scales(f.scales);
  inference.flip = f.test_flip;
}

}  // namespace cbst::cli
