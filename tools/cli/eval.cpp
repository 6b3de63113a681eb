// cbst eval: scores predictions against a dataset's ground truth and prints the per-class
// IoU table (and JSON: the scores, the confusion matrix and what was evaluated, see
// selftrain/eval_record.h). The predicted label maps come from one of two sources:
//   --predictions DIR           a folder of predicted label PNGs (data/predictions.h);
//   --checkpoint F [--model N]  a model run over the images (a cbst checkpoint names its
//                               model and --model checks it; other weight files need --model),
//                               with optional test scales and flip (selftrain/evaluate.h),
//                               optionally saving its predictions.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/evaluation.h"
#include "data/predictions.h"
#include "engine/check.h"
#include "models/weight_import.h"
#include "selftrain/eval_record.h"
#include "selftrain/evaluate.h"
#include "selftrain/inference.h"
#include "tools/cli/model_options.h"
#include "tools/cli/registry.h"
#include "tools/cli/training_options.h"
#include "tools/cli/validators.h"

namespace {

using namespace cbst::data;
using cbst::json_text;

struct EvalOptions {
  std::string data;         // KIND=PATH
  std::string split;  // empty: the spec's, else val
  std::string list_file;
  std::string predictions;  // folder of label PNGs
  std::string pred_format = "labelids";
  std::string protocol;     // default from the dataset kind
  std::string json;
  // Model evaluation.
  std::string model;
  std::string checkpoint;
  int64_t classes = 0;
  bool allow_partial = false;
  std::vector<double> scales = {1.0};
  bool flip = false;
  std::string device = "cpu";
  std::string precision = "f32";
  double input_scale = 1.0;
  std::string input_convention;
  std::string save_predictions;
  int64_t save_limit = -1;
  bool save_train_ids = false;
  // Set from the parsed command line, for the checks between the two sources.
  std::vector<std::string> model_only_given;
  bool pred_format_given = false;
};

std::string default_protocol(const Dataset& ds) {
  if (ds.kind().rfind("nthu", 0) == 0) return "nthu";
  if (ds.kind() == "synthia") return "16";
  return "19";
}

// Progress on a terminal only; logs stay clean.
std::function<void(int64_t, int64_t)> progress_printer() {
  if (!::isatty(2)) return {};
  return [](int64_t done, int64_t total) {
    std::fprintf(stderr, "\rimages processed: %lld/%lld", (long long)done, (long long)total);
    if (done == total) std::fprintf(stderr, "\n");
  };
}

// The folder that `eval --save-predictions` and `predict` write holds labelIds/ and trainIds/
// beside color/ and overlay/: the ids of the format asked for are read from their subfolder.
std::string prediction_folder(const EvalOptions& o) {
  const std::string sub = o.pred_format == "labelids" ? "labelIds" : "trainIds";
  const std::filesystem::path inner = std::filesystem::path(o.predictions) / sub;
  std::error_code ec;
  if (!std::filesystem::is_directory(inner, ec)) return o.predictions;
  std::fprintf(stderr, "reading %s (the %s of a folder cbst wrote)\n", inner.string().c_str(), sub.c_str());
  return inner.string();
}

EvalResult evaluate_prediction_folder(const Dataset& ds, const EvalOptions& o, const Protocol& protocol) {
  const PredictionIndex index(prediction_folder(o));
  return evaluate_predictions(ds, index,
                              {.prediction_encoding = encoding_from_name(o.pred_format),
                               .protocol = protocol,
                               .progress = progress_printer()});
}

// Exactly one source of predictions, and no option of the other source.
void check_sources(const EvalOptions& o) {
  const bool folder = !o.predictions.empty();
  const bool model = !o.model.empty() || !o.checkpoint.empty();
  if (folder && model)
    CBST_THROW("cbst eval takes either --predictions DIR or --checkpoint FILE, not both");
  if (!folder && !model)
    CBST_THROW("cbst eval needs predictions: pass --predictions DIR (a folder of predicted label PNGs) "
               "or --checkpoint FILE (evaluate a model)");
  // The checkpoint records its model; --model, when given, is checked against it.
  if (model && o.checkpoint.empty())
    CBST_THROW("evaluating a model needs --checkpoint FILE (a cbst checkpoint, or weights with --model); got --model only");
  if (folder && !o.model_only_given.empty())
    CBST_THROW(o.model_only_given.front(), " applies to --model evaluation only, not to --predictions");
  if (model && o.pred_format_given)
    CBST_THROW("--pred-format applies to --predictions only; a model's predictions need no format");
}

EvalResult evaluate_checkpoint(cbst::SegmentationModel& model, const Dataset& ds, const EvalOptions& o,
                               const Protocol& protocol) {
  std::fprintf(stderr, "model %s (%lld classes) on %s, scales %s%s, input scale %g\n", model.name().c_str(),
               (long long)model.num_classes(), o.device.c_str(), cbst::scales_text(o.scales).c_str(),
               o.flip ? " + flip" : "", o.input_scale);
  cbst::EvaluateOptions options;
  options.protocol = protocol;
  options.inference.scales = o.scales;
  options.inference.flip = o.flip;
  options.input_scale = o.input_scale;
  options.device = cbst::Device::parse(o.device);
  options.input_convention = o.input_convention;
  options.save_predictions = o.save_predictions;
  options.save_limit = o.save_limit;
  options.save_train_ids = o.save_train_ids;
  options.progress = progress_printer();
  const EvalResult result = cbst::evaluate_model(model, ds, options);
  if (!o.save_predictions.empty())
    std::fprintf(stderr, "wrote predictions to %s/%s and %s/color\n", o.save_predictions.c_str(),
                 o.save_train_ids ? "trainIds" : "labelIds", o.save_predictions.c_str());
  return result;
}

void run_eval(const EvalOptions& o) {
  check_sources(o);
  const auto [spec, split] = cbst::cli::dataset_and_split(o.data, o.split, "val", "--data", "--split");
  const Dataset ds = open_dataset(spec, {.split = split, .list_file = o.list_file});
  const Protocol protocol = protocol_from_name(o.protocol.empty() ? default_protocol(ds) : o.protocol);
  // Load the model before printing anything, so that a wrong checkpoint fails on one line.
  std::shared_ptr<cbst::SegmentationModel> model;
  EvalOptions resolved = o;
  if (o.predictions.empty()) {
    (void)cbst::Device::parse(o.device);  // a bad --device fails before the model loads
    // Normalise inputs as the checkpoint's weights expect (e.g. an FCN converted from
    // torchvision weights wants RGB mean/std, not the Caffe default), unless told otherwise.
    const cbst::LoadedModel loaded = cbst::load_model(
        o.checkpoint, {.model = o.model, .num_classes = o.classes, .default_classes = cbst::default_num_classes(ds),
                       .allow_partial = o.allow_partial, .inference = true});
    model = loaded.model;
    model->set_precision(cbst::precision_from_name(o.precision));
    std::fprintf(stderr, "model: %s\n", loaded.description.c_str());
    if (resolved.input_convention.empty()) resolved.input_convention = loaded.input_convention;
  }
  std::fprintf(stderr, "evaluating %s against %s, protocol %s\n",
               model ? o.checkpoint.c_str() : o.predictions.c_str(), ds.describe().c_str(), protocol.name.c_str());
  const EvalResult result =
      model ? evaluate_checkpoint(*model, ds, resolved, protocol) : evaluate_prediction_folder(ds, o, protocol);
  std::fputs(format_table(result).c_str(), stdout);
  std::fflush(stdout);
  if (!o.json.empty()) {
    // What was evaluated beside the scores (selftrain/eval_record.h).
    cbst::EvalSource source{.data = o.data, .split = o.split, .list = o.list_file};
    if (model) {
      source.checkpoint = o.checkpoint;
      source.model = model->name();
      source.scales = o.scales;
      source.flip = o.flip;
      source.input_scale = o.input_scale;
      source.precision = o.precision;
      source.input_convention = resolved.input_convention.empty() ? model->input_convention() : resolved.input_convention;
    } else {
      source.predictions = o.predictions;
      source.pred_format = o.pred_format;
    }
    write_text_atomic(o.json, json_text(cbst::eval_record(result, source), 2) + "\n");
    std::fprintf(stderr, "wrote %s\n", o.json.c_str());
  }
}

const cbst::cli::Command reg(
    {.parent = "",
     .name = "eval",
     .help = "Evaluate a model or predicted label maps against a dataset's ground truth (IoU table, JSON)"},
    [](CLI::App& cmd) {
      auto o = std::make_shared<EvalOptions>();
      cmd.add_option("--data", o->data,
                     "Dataset as KIND=PATH[:SPLIT]: gta5=, synthia=, cityscapes=, nthu:CITY=, bdd=, list[:ENC]=IMAGES[,LABELS]")
          ->required();
      cmd.add_option("--split", o->split, "Dataset split (cityscapes/bdd: train, val, test; nthu: train, test); "
                                          "default val; the same as --data KIND=PATH:SPLIT");
      cmd.add_option("--list", o->list_file, "Optional list file ('image [label]' per line, relative to the root)");
      cmd.add_option("--predictions", o->predictions,
                     "Folder of predicted label PNGs, matched to images by stem anywhere under it");
      auto* pred_format = cmd.add_option("--pred-format", o->pred_format,
                     "Values in the prediction PNGs: labelids (Cityscapes labelIds), trainids (19 trainIds), "
                     "trainids16 (CBST's 16-class ids)")
          ->check(CLI::IsMember({"labelids", "trainids", "trainids16"}))
          ->capture_default_str();
      cmd.add_option("--protocol", o->protocol,
                     "Classes to score: 19, 16, 13 (16 less wall/fence/pole), nthu (default: from the dataset)")
          ->check(CLI::IsMember({"19", "16", "13", "nthu"}));
      cmd.add_option("--json", o->json, "Also write the results as JSON to this file");
      cbst::cli::add_checkpoint_model_option(cmd, o->model);
      cmd.add_option("--checkpoint", o->checkpoint, "Evaluate a model instead: its cbst checkpoint (.safetensors), or "
                                                    "a .pth/.params/.caffemodel/.safetensors weights file with --model");
      std::vector<CLI::Option*> model_only;
      model_only.push_back(cbst::cli::add_classes_option(cmd, o->classes));
      model_only.push_back(cbst::cli::add_allow_partial_flag(cmd, o->allow_partial));
      model_only.push_back(cmd.add_option("--scales", o->scales,
                                          "Test scales, comma-separated (the paper's MST: 0.5,0.75,1.0); "
                                          "softmax probabilities are averaged at the label resolution")
                               ->delimiter(',')
                               ->check(cbst::cli::Positive())
                               ->capture_default_str());
      model_only.push_back(cmd.add_flag("--flip", o->flip, "Also average the horizontally mirrored image"));
      model_only.push_back(
          cmd.add_option("--device", o->device, "Device to run the model on: cpu, cuda, cuda:N")->capture_default_str());
      model_only.push_back(cbst::cli::add_precision_option(cmd, o->precision));
      model_only.push_back(cmd.add_option("--input-scale", o->input_scale,
                                          "Resize the images by this factor before inference (predictions are "
                                          "scored at the label resolution)")
                               ->check(cbst::cli::Positive())
                               ->capture_default_str());
      model_only.push_back(cbst::cli::add_input_convention_option(cmd, o->input_convention, "the model's"));
      model_only.push_back(cmd.add_option("--save-predictions", o->save_predictions,
                                          "Write labelId PNGs (DIR/labelIds) and colourised predictions "
                                          "(DIR/color) to this folder"));
      model_only.push_back(cmd.add_option("--save-limit", o->save_limit,
                                          "Save the predictions of the first K images only; -1: all"));
      model_only.push_back(cmd.add_flag("--save-train-ids", o->save_train_ids,
                                        "Save the model's class ids (DIR/trainIds) instead of Cityscapes labelIds"));
      cmd.callback([o, model_only, pred_format] {
        o->model_only_given.clear();
        for (CLI::Option* opt : model_only)
          if (opt->count() > 0) o->model_only_given.push_back(opt->get_name());
        o->pred_format_given = pred_format->count() > 0;
        run_eval(*o);
      });
    });

}  // namespace
