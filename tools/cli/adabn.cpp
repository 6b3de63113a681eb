// cbst adabn: a model's batch-norm statistics re-estimated on another domain's images
// (selftrain/batch_norm_statistics.h), every weight kept; writes a cbst checkpoint that
// `cbst eval`, `predict`, `pseudolabel` and `adapt --init` read.
//
//   cbst adabn --checkpoint SOURCE.safetensors --data cityscapes=PATH[:SPLIT] --out ADABN.safetensors
//        [--model NAME] [--classes N] [--batch B] [--limit K] [--device D] [--seed S] [--input-convention C]
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "data/dataset.h"
#include "models/weight_import.h"
#include "selftrain/batch_norm_statistics.h"
#include "tools/cli/model_options.h"
#include "tools/cli/registry.h"
#include "tools/cli/validators.h"
#include "weights/load_weights.h"

namespace {

using namespace cbst;

struct AdabnFlags {
  std::string data;
  std::string split;  // empty: the spec's, else train
  std::string list_file;
  std::string checkpoint;
  std::string model;
  int64_t classes = 0;
  bool allow_partial = false;
  std::string out;
  int64_t batch = 4;
  int64_t limit = -1;
  std::string device = "cpu";
  std::string input_convention;
  uint64_t seed = 0;
};

void run_adabn(const AdabnFlags& f) {
  const auto [spec, split] = cli::dataset_and_split(f.data, f.split, "train", "--data", "--split");
  const data::Dataset ds = data::open_dataset(spec, {.split = split, .list_file = f.list_file});
  const LoadedModel loaded =
      load_model(f.checkpoint, {.model = f.model, .num_classes = f.classes, .default_classes = default_num_classes(ds),
                                .allow_partial = f.allow_partial, .inference = true, .seed = f.seed});
  SegmentationModel& model = *loaded.model;
  const std::string convention = f.input_convention.empty() ? loaded.input_convention : f.input_convention;
  std::fprintf(stderr, "model: %s\nimages: %s\n", loaded.description.c_str(), ds.describe().c_str());
  BatchNormStatisticsOptions o{.batch = f.batch, .device = Device::parse(f.device), .input_convention = convention,
                               .limit = f.limit};
  if (::isatty(2))  // progress on a terminal only; logs stay clean
    o.progress = [](int64_t done, int64_t total) {
      std::fprintf(stderr, "\rimages seen: %lld/%lld", (long long)done, (long long)total);
      if (done == total) std::fprintf(stderr, "\n");
    };
  const BatchNormStatisticsSummary s = recompute_batch_norm_statistics(model, ds, o);
  weights::save_checkpoint(f.out, model_checkpoint(model, convention));
  std::printf("re-estimated the statistics of %lld batch-norm layers of %s on %lld images of %s (%s), in %lld "
              "batches of up to %lld; weights in %s\n",
              (long long)s.layers, model.name().c_str(), (long long)s.images, ds.kind().c_str(), ds.split().c_str(),
              (long long)s.batches, (long long)f.batch, f.out.c_str());
}

const cli::Command reg(
    {.parent = "", .name = "adabn",
     .help = "AdaBN: a model's batch-norm statistics re-estimated on (target) images, every weight kept"},
    [](CLI::App& cmd) {
      auto f = std::make_shared<AdabnFlags>();
      cmd.add_option("--checkpoint", f->checkpoint, "The model: a cbst checkpoint (.safetensors), or a "
                                                    ".pth/.params/.caffemodel/.safetensors weights file with --model")
          ->required();
      cmd.add_option("--data", f->data, "The images whose statistics to take, KIND=PATH[:SPLIT] (split default "
                                        "train); labels are not read")->required();
      cmd.add_option("--split", f->split, "Dataset split (default train); the same as --data KIND=PATH:SPLIT");
      cmd.add_option("--list", f->list_file, "Optional list file ('image' per line, relative to the root)");
      cli::add_checkpoint_model_option(cmd, f->model);
      cli::add_classes_option(cmd, f->classes);
      cli::add_allow_partial_flag(cmd, f->allow_partial);
      cmd.add_option("--out", f->out, "Output cbst checkpoint (.safetensors)")->required();
      cmd.add_option("--batch", f->batch, "Whole images per forward pass, the statistics' batch (images of "
                                          "another size start a new one)")
          ->check(cbst::cli::InRange(int64_t(1), int64_t(4096)))->capture_default_str();
      cmd.add_option("--limit", f->limit, "Use the first K images only; -1: all")
          ->check(cbst::cli::InRange(int64_t(1), int64_t(1) << 40));
      cmd.add_option("--device", f->device, "cpu, cuda or cuda:N")->capture_default_str();
      cmd.add_option("--seed", f->seed, "Seed of the dropout masks: the model runs as in training, dropout "
                                        "included, while the statistics are taken")
          ->capture_default_str();
      cli::add_input_convention_option(cmd, f->input_convention, "the checkpoint's");
      cmd.callback([f] { run_adabn(*f); });
    });

}  // namespace
