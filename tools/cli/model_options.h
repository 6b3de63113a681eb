// The options that name a model and its weights, spelt and explained the same way in every
// subcommand that loads one (train, adapt, eval, predict, pseudolabel, weights convert), and
// the dataset spelling they share: KIND=PATH[:SPLIT], where `--split S` says the same.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "engine/check.h"
#include "models/segmentation_model.h"
#include "selftrain/training_setup.h"
#include "tools/cli/validators.h"

namespace cbst::cli {

// --classes: 0 takes the count from the weights' classifier, else from the data.
inline CLI::Option* add_classes_option(CLI::App& cmd, int64_t& classes) {
  return cmd.add_option("--classes", classes,
                        "number of classes; 0: the classifier's in the weights file, else 16 for SYNTHIA data "
                        "and 19 for the rest (a different count than the file's is an error)")
      ->check(cbst::cli::InRange(0, 255));
}

inline CLI::Option* add_allow_partial_flag(CLI::App& cmd, bool& allow) {
  return cmd.add_flag("--allow-partial", allow,
                      "accept a weights file that leaves trained layers of the model (and, for inference, its "
                      "head) at their random initialisation");
}

// --model beside --checkpoint (eval, predict, adabn): checked against the model a cbst
// checkpoint records, needed for other weight files.
inline CLI::Option* add_checkpoint_model_option(CLI::App& cmd, std::string& model) {
  return cmd.add_option("--model", model, "The network: checked against the one a cbst checkpoint records; "
                                          "needed for other weight files")
      ->check(CLI::IsMember(model_names()));
}

// --input-convention: how the images are normalised, by default as the weights say (`whose`
// names them in the help: "the checkpoint's", "the model's").
inline CLI::Option* add_input_convention_option(CLI::App& cmd, std::string& convention, const std::string& whose) {
  return cmd.add_option("--input-convention", convention,
                        "Input normalisation: caffe or torchvision (default: " + whose + ")")
      ->check(CLI::IsMember({"caffe", "torchvision"}));
}

// The dataset and split a command reads: the split of a KIND=PATH:SPLIT spec, or `split`
// (the --split option; empty when not given), or `default_split`. Both, disagreeing, is an
// error naming both. The option's own default is empty so that a config.toml, which writes
// every option, reads back without a --split that contradicts the spec.
inline std::pair<std::string, std::string> dataset_and_split(const std::string& spec, const std::string& split,
                                                             const std::string& default_split, const std::string& flag,
                                                             const std::string& split_flag) {
  const auto [data, in_spec] = split_eval_spec(spec, "");
  if (in_spec.empty()) return {data, split.empty() ? default_split : split};
  if (!split.empty() && in_spec != split)
    CBST_THROW(flag, " ", spec, " names split '", in_spec, "' but ", split_flag, " is '", split,
               "'; give the split once");
  return {data, in_spec};
}

}  // namespace cbst::cli
