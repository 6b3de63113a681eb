// The recipe a model brings to `cbst train` and `cbst adapt`: values for the options a user
// leaves out (on the command line and in a --config file), as an mmseg config brings its
// schedule with the model. Only `small-deeplabv3plus` has one, the demo's (DemoConfig's
// defaults, README "The training recipe"); the paper's networks keep the plain defaults,
// which are the authors' but for `adapt --flip`: their round driver always passes it, and
// here it is off unless given. A flag the recipe turns on is turned off with --flag=false.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace cbst::cli {

struct RecipeOption {
  std::string flag;   // "--lr"
  std::string value;  // "0.1"; "true" for a flag
};

// Where `cmd` read no --model and `init` is a cbst checkpoint (a .safetensors file that records
// its model and class count): sets --model to the checkpoint's model as if typed, so that the
// recipe follows it and config.toml and --resume name it too.
void take_model_of_init(CLI::App& cmd, const std::string& init, const std::string& model);

// The recipe of `model` for `command` ("train" or "adapt"); empty for a model without one.
// Self-training's crop, the target images' shorter side, is the caller's to add.
std::vector<RecipeOption> model_recipe(const std::string& model, const std::string& command);

// The shorter side of the first image of `spec` (KIND=PATH) in `split`, after `resize_long_side`.
int shorter_image_side(const std::string& spec, const std::string& split, int resize_long_side);

// Gives each option of `recipe` that `cmd` read no value for its recipe value, through the
// option's own parser and checks, as if it had been typed; returns those given.
std::vector<RecipeOption> apply_recipe(CLI::App& cmd, const std::vector<RecipeOption>& recipe);

// "MODEL's for the options not given: --epochs 30 --poly ..." for the log; empty when
// nothing was applied.
std::string recipe_note(const std::string& model, const std::vector<RecipeOption>& applied);

}  // namespace cbst::cli
