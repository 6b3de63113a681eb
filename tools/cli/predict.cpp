// `cbst predict`: a model's labels for images without ground truth (selftrain/predict.h).
//
//   cbst predict --data KIND=PATH[:SPLIT] [--split S] [--list FILE] --checkpoint C [--model NAME]
//                --out DIR [--scales 0.5,0.75,1] [--flip] [--device cpu|cuda]
//                [--input-scale X] [--input-convention caffe|torchvision]
//                [--no-label-ids] [--no-train-ids] [--no-color] [--no-overlay]
//                [--overlay-alpha A] [--limit K]
//
// --data takes every dataset kind (labels, if any, are ignored), and images=DIR for a plain
// folder of pictures. A cbst checkpoint records its model, so --model only checks it; other
// weight files (.pth, .params, .caffemodel) need --model and are imported (--allow-partial,
// --classes as in training).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "data/label_map.h"
#include "engine/format.h"
#include "models/weight_import.h"
#include "selftrain/predict.h"
#include "tools/cli/model_options.h"
#include "tools/cli/registry.h"
#include "tools/cli/validators.h"

namespace {

using namespace cbst;

struct PredictFlags {
  std::string data;
  std::string split;  // empty: the spec's, else test
  std::string list_file;
  std::string checkpoint;
  std::string model;
  int64_t classes = 0;
  bool allow_partial = false;
  std::string out;
  std::vector<double> scales = {1.0};
  bool flip = false;
  std::string device = "cpu";
  double input_scale = 1.0;
  std::string input_convention;
  bool label_ids = true, train_ids = true, color = true, overlay = true;
  double overlay_alpha = 0.5;
  int64_t limit = -1;
};

void run_predict(const PredictFlags& f) {
  PredictOptions o;
  o.out = f.out;
  o.inference.scales = f.scales;
  o.inference.flip = f.flip;
  o.input_scale = f.input_scale;
  o.device = Device::parse(f.device);
  o.label_ids = f.label_ids;
  o.train_ids = f.train_ids;
  o.color = f.color;
  o.overlay = f.overlay;
  o.overlay_alpha = f.overlay_alpha;
  o.limit = f.limit;
  const auto [spec, split] = cli::dataset_and_split(f.data, f.split, "test", "--data", "--split");
  const data::Dataset ds = data::open_dataset(spec, {.split = split, .list_file = f.list_file});
  // The model before the first image, so that a wrong checkpoint fails on one line.
  const LoadedModel loaded =
      load_model(f.checkpoint, {.model = f.model, .num_classes = f.classes, .default_classes = default_num_classes(ds),
                                .allow_partial = f.allow_partial, .inference = true});
  const std::shared_ptr<SegmentationModel> model = loaded.model;
  o.input_convention = f.input_convention.empty() ? loaded.input_convention : f.input_convention;
  std::fprintf(stderr, "model: %s\n", loaded.description.c_str());
  std::fprintf(stderr, "predicting %s with %s (%s, %lld classes) on %s, scales", ds.describe().c_str(),
               f.checkpoint.c_str(), model->name().c_str(), (long long)model->num_classes(), f.device.c_str());
  for (size_t i = 0; i < f.scales.size(); ++i) std::fprintf(stderr, "%s%g", i ? "," : " ", f.scales[i]);
  std::fprintf(stderr, "%s\n", f.flip ? " + flip" : "");
  if (::isatty(2))  // progress on a terminal only; logs stay clean
    o.progress = [](int64_t done, int64_t total) {
      std::fprintf(stderr, "\rimages predicted: %lld/%lld", (long long)done, (long long)total);
      if (done == total) std::fprintf(stderr, "\n");
    };
  const PredictSummary s = predict_dataset(*model, ds, o);
  // What was predicted, most frequent first: a quick check that the model sees something.
  int64_t total = 0;
  for (int64_t c : s.class_pixels) total += c;
  const auto& table = data::class_table(data::class_space_for(int(model->num_classes())));
  std::vector<size_t> order(s.class_pixels.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return s.class_pixels[a] > s.class_pixels[b]; });
  std::printf("%s predicted into %s\n", count_of(s.images, "image").c_str(), f.out.c_str());
  std::printf("%-16s %8s\n", "class", "pixels");
  for (size_t c : order)
    if (s.class_pixels[c] > 0)
      std::printf("%-16s %7.1f%%\n", c < table.size() ? table[c].name.c_str() : "?",
                  100.0 * double(s.class_pixels[c]) / double(std::max<int64_t>(total, 1)));
}

const cli::Command reg(
    {.parent = "", .name = "predict",
     .help = "Predict labels for images without ground truth: labelIds, trainIds, colour and overlay PNGs"},
    [](CLI::App& cmd) {
      auto f = std::make_shared<PredictFlags>();
      cmd.add_option("--data", f->data,
                     "Images as KIND=PATH: images=DIR (a folder, with subfolders), cityscapes=, gta5=, synthia=, "
                     "nthu:CITY=, bdd=, list=IMAGES; KIND=PATH:SPLIT names the split")->required();
      cmd.add_option("--split", f->split, "Dataset split for layouts that have them (cityscapes/bdd: train, val, "
                                          "test); default test; the same as --data KIND=PATH:SPLIT");
      cmd.add_option("--list", f->list_file, "Optional list file ('image' per line, relative to the root)");
      cmd.add_option("--checkpoint", f->checkpoint, "The model's cbst checkpoint (.safetensors), or a "
                                                    ".pth/.params/.caffemodel/.safetensors weights file with --model")
          ->required();
      cli::add_checkpoint_model_option(cmd, f->model);
      cli::add_classes_option(cmd, f->classes);
      cli::add_allow_partial_flag(cmd, f->allow_partial);
      cmd.add_option("--out", f->out, "Output folder: labelIds/, trainIds/, color/ and overlay/ inside")->required();
      cmd.add_option("--scales", f->scales, "Test scales, comma-separated (the paper's MST: 0.5,0.75,1.0)")
          ->delimiter(',')->check(cbst::cli::InRange(0.05, 8.0))->capture_default_str();
      cmd.add_flag("--flip", f->flip, "Also average the horizontally mirrored image");
      cmd.add_option("--device", f->device, "cpu, cuda or cuda:N")->capture_default_str();
      cmd.add_option("--input-scale", f->input_scale, "Resize the images by this factor before inference "
                                                      "(outputs keep the image's size)")->capture_default_str();
      cli::add_input_convention_option(cmd, f->input_convention, "the checkpoint's");
      cmd.add_flag("!--no-label-ids", f->label_ids, "Do not write labelIds/");
      cmd.add_flag("!--no-train-ids", f->train_ids, "Do not write trainIds/");
      cmd.add_flag("!--no-color", f->color, "Do not write color/");
      cmd.add_flag("!--no-overlay", f->overlay, "Do not write overlay/");
      cmd.add_option("--overlay-alpha", f->overlay_alpha, "Weight of the class colour in overlay/ (0..1)")
          ->capture_default_str();
      cmd.add_option("--limit", f->limit, "Predict the first K images only; -1: all")
          ->check(cbst::cli::InRange(int64_t(1), int64_t(1) << 40));
      cmd.callback([f] { run_predict(*f); });
    });

}  // namespace
