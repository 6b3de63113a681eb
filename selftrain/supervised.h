// Supervised training (`cbst train`): source-only models and target-supervised oracles.
// Epochs over one labelled dataset with SGD; a checkpoint after every epoch (resumable with
// the same numbers), evaluation at the end (and every `eval_every` epochs), best.safetensors
// by val mIoU, summary.json, eval/final.json and report.html (the README's run folder).
#pragma once

#include <string>

#include "selftrain/training_setup.h"

namespace cbst {

struct SupervisedConfig {
  std::string data;  // KIND=PATH
  std::string split = "train";
  std::string list;  // optional list file restricting the dataset
  std::string eval;  // KIND=PATH[:SPLIT]; empty: none
  std::string model = "small-fcn";
  // 0: the classifier's in `init`, else default_num_classes of the (source) data.
  int64_t num_classes = 0;
  std::string init;
  bool allow_partial = false;  // `init` may leave trained layers at their initialisation
  int64_t epochs = 10;
  int64_t eval_every = 0;  // 0: only at the end
  bool poly = false;       // poly learning-rate decay (power 0.9) over all steps
  TrainingOptions train = {};
  InferenceOptions inference = {};
  std::string run;
  bool resume = false;
  bool keep_checkpoints = false;  // keep every epoch's resumable checkpoint, not only the newest
  std::string config_text;
  std::string recipe_note;  // the model recipe's options the command line left out (tools/cli/recipe.h), logged
};

void run_supervised(const SupervisedConfig& config);

}  // namespace cbst
