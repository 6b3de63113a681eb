#include "tools/cli/recipe.h"

#include <algorithm>
#include <cmath>

#include "data/dataset.h"
#include "data/image.h"
#include "engine/check.h"
#include "engine/format.h"
#include "models/weight_import.h"
#include "selftrain/demo.h"
#include "weights/safetensors.h"

namespace cbst::cli {

void take_model_of_init(CLI::App& cmd, const std::string& init, const std::string& model) {
  if (cmd.count("--model") > 0 || !init.ends_with(".safetensors")) return;
  const std::string recorded = checkpoint_model(weights::read_safetensors_metadata(init));
  if (!recorded.empty() && recorded != model) apply_recipe(cmd, {{"--model", recorded}});
}

std::vector<RecipeOption> model_recipe(const std::string& model, const std::string& command) {
  if (model != "small-deeplabv3plus") return {};
  const DemoConfig d = demo_defaults(false);
  std::vector<RecipeOption> r = {
      {"--batch", std::to_string(d.batch)},
      {"--scale-range", format_g(d.min_scale) + "," + format_g(d.max_scale)},
      {"--color-jitter", d.color_jitter.str()},
      {"--rare-class-sampling", format_g(d.rare_class_sampling)},
      {"--rare-class-draw", d.rare_class_draw},
  };
  if (command == "train") {
    r.insert(r.end(), {{"--epochs", std::to_string(d.source_epochs)},
                       {"--poly", "true"},
                       {"--warmup-iters", std::to_string(d.warmup_iters)},
                       {"--crop", std::to_string(d.crop)},
                       {"--lr", format_g(d.lr)}});
  } else {
    CBST_CHECK(command == "adapt", "no recipe for cbst ", command);
    r.insert(r.end(), {{"--rounds", std::to_string(d.rounds)},
                       {"--round-schedule", d.round_schedule},
                       {"--portion", d.portion.str()},
                       {"--source-portion", d.source_portion.str()},
                       {"--epochs-per-round", std::to_string(d.epochs_per_round)},
                       {"--lr", format_g(d.adapt_lr)}});
    if (d.adapt_adabn == "rounds") r.push_back({"--adabn", "true"});
    if (d.adapt_flip) r.push_back({"--flip", "true"});
    if (d.adapt_target_jitter) r.push_back({"--target-jitter", "true"});
  }
  return r;
}

int shorter_image_side(const std::string& spec, const std::string& split, int resize_long_side) {
  const data::Dataset ds = data::open_dataset(spec, {.split = split});
  CBST_CHECK(ds.size() > 0, "the dataset is empty: ", ds.describe());
  const std::string& path = ds.sample(0).image;
  int w = 0, h = 0;
  if (data::is_png_file(path)) {
    const data::PngHeader header = data::read_png_header(path);
    w = header.width;
    h = header.height;
  } else {
    const data::Image image = data::read_image_rgb(path);
    w = image.width;
    h = image.height;
  }
  int side = std::min(w, h);
  if (resize_long_side > 0 && std::max(w, h) > 0)
    side = std::max(1, int(std::lround(double(side) * resize_long_side / std::max(w, h))));
  return side;
}

std::vector<RecipeOption> apply_recipe(CLI::App& cmd, const std::vector<RecipeOption>& recipe) {
  std::vector<RecipeOption> applied;
  for (const RecipeOption& r : recipe) {
    CLI::Option* option = cmd.get_option(r.flag);
    if (option->count() > 0) continue;
    option->add_result(r.value);
    option->run_callback();
    applied.push_back(r);
  }
  return applied;
}

std::string recipe_note(const std::string& model, const std::vector<RecipeOption>& applied) {
  if (applied.empty()) return "";
  std::string s = model + "'s for the options not given:";
  for (const RecipeOption& r : applied) {
    s += ' ' + r.flag;
    if (r.value != "true") s += " " + r.value;
  }
  return s;
}

}  // namespace cbst::cli
