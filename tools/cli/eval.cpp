// cbst eval: scores predictions against a dataset's ground truth and prints the per-class
// IoU table (and JSON). Today the predictions come from a folder of label PNGs; evaluating a
// model (--model/--checkpoint) will add a second source of predicted label maps feeding the
// same ConfusionMatrix and report (run_eval picks the source).
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "data/dataset.h"
#include "data/evaluation.h"
#include "data/predictions.h"
#include "engine/check.h"
#include "tools/cli/registry.h"

namespace {

using namespace cbst::data;

struct EvalOptions {
  std::string data;         // KIND=PATH
  std::string split = "val";
  std::string list_file;
  std::string predictions;  // folder of label PNGs
  std::string pred_format = "labelids";
  std::string protocol;     // default from the dataset kind
  std::string json;
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

EvalResult evaluate_prediction_folder(const Dataset& ds, const EvalOptions& o, const Protocol& protocol) {
  const PredictionIndex index(o.predictions);
  return evaluate_predictions(ds, index,
                              {.prediction_encoding = encoding_from_name(o.pred_format),
                               .protocol = protocol,
                               .progress = progress_printer()});
}

void run_eval(const EvalOptions& o) {
  if (o.predictions.empty())
    CBST_THROW("cbst eval needs predictions: pass --predictions DIR (a folder of predicted label PNGs)");
  const Dataset ds = open_dataset(o.data, {.split = o.split, .list_file = o.list_file});
  const Protocol protocol = protocol_from_name(o.protocol.empty() ? default_protocol(ds) : o.protocol);
  std::fprintf(stderr, "evaluating %s against %s, protocol %s\n", o.predictions.c_str(), ds.describe().c_str(),
               protocol.name.c_str());
  const EvalResult result = evaluate_prediction_folder(ds, o, protocol);
  std::fputs(format_table(result).c_str(), stdout);
  std::fflush(stdout);
  if (!o.json.empty()) {
    write_text_atomic(o.json, to_json(result));
    std::fprintf(stderr, "wrote %s\n", o.json.c_str());
  }
}

const cbst::cli::Command reg(
    {.parent = "", .name = "eval", .help = "Evaluate predicted label maps against a dataset's ground truth (IoU table, JSON)"},
    [](CLI::App& cmd) {
      auto o = std::make_shared<EvalOptions>();
      cmd.add_option("--data", o->data,
                     "Dataset as KIND=PATH: gta5=, synthia=, cityscapes=, nthu:CITY=, bdd=, list[:ENC]=IMAGES[,LABELS]")
          ->required();
      cmd.add_option("--split", o->split, "Dataset split (cityscapes/bdd: train, val, test; nthu: train, test)")
          ->capture_default_str();
      cmd.add_option("--list", o->list_file, "Optional list file ('image [label]' per line, relative to the root)");
      cmd.add_option("--predictions", o->predictions,
                     "Folder of predicted label PNGs, matched to images by stem anywhere under it");
      cmd.add_option("--pred-format", o->pred_format,
                     "Values in the prediction PNGs: labelids (Cityscapes labelIds), trainids (19 trainIds), "
                     "trainids16 (CBST's 16-class ids)")
          ->check(CLI::IsMember({"labelids", "trainids", "trainids16"}))
          ->capture_default_str();
      cmd.add_option("--protocol", o->protocol,
                     "Classes to score: 19, 16, 13 (16 less wall/fence/pole), nthu (default: from the dataset)")
          ->check(CLI::IsMember({"19", "16", "13", "nthu"}));
      cmd.add_option("--json", o->json, "Also write the results as JSON to this file");
      cmd.callback([o] { run_eval(*o); });
    });

}  // namespace
