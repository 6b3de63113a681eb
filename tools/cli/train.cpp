// cbst train: supervised training (source-only models, target oracles).
#include "selftrain/supervised.h"
#include "tools/cli/model_options.h"
#include "tools/cli/recipe.h"
#include "tools/cli/registry.h"
#include "tools/cli/validators.h"
#include "tools/cli/training_options.h"

namespace cbst {
namespace {

cli::Command reg({.parent = "", .name = "train", .help = "Supervised training: source-only models and oracles"},
                 [](CLI::App& cmd) {
                   auto c = std::make_shared<SupervisedConfig>();
                   auto f = std::make_shared<cli::TrainingFlags>();
                   cmd.add_option("--data", c->data, "labelled dataset KIND=PATH[:SPLIT] (gta5=, synthia=, cityscapes=, ...)")->required();
                   auto split = std::make_shared<std::string>();
                   cmd.add_option("--split", *split, "split of --data (default train; the same as --data KIND=PATH:SPLIT)");
                   cmd.add_option("--list", c->list, "list file restricting --data");
                   cmd.add_option("--eval", c->eval, "evaluation set KIND=PATH[:SPLIT] (split default val)");
                   cmd.add_option("--model", c->model,
                                  "the network; small-deeplabv3plus brings its recipe (the demo's) to the options not "
                                  "given, the others the plain defaults (README, \"The training recipe\")")->check(CLI::IsMember(model_names()));
                   cli::add_classes_option(cmd, c->num_classes);
                   cmd.add_option("--init", c->init, "initial weights: a cbst checkpoint or .pth/.params/.caffemodel/.safetensors");
                   cli::add_allow_partial_flag(cmd, c->allow_partial);
                   cmd.add_option("--epochs", c->epochs, "training epochs")->check(cbst::cli::InRange(1, 100000))->capture_default_str();
                   cmd.add_option("--eval-every", c->eval_every, "evaluate every N epochs (0: at the end)");
                   cmd.add_flag("--poly", c->poly, "poly learning-rate decay (power 0.9)");
                   cli::add_training_options(cmd, c->train, *f);
                   cmd.add_option("--run", c->run, "run folder")->required();
                   cmd.add_flag("--resume", c->resume, "continue the run in --run after its last epoch");
                   cmd.add_flag("--keep-checkpoints", c->keep_checkpoints, "keep every epoch's checkpoint");
                   cmd.callback([c, f, split, &cmd] {
                     cli::take_model_of_init(cmd, c->init, c->model);  // --model left out
                     std::tie(c->data, c->split) = cli::dataset_and_split(c->data, *split, "train", "--data", "--split");
                     c->recipe_note =
                         cli::recipe_note(c->model, cli::apply_recipe(cmd, cli::model_recipe(c->model, "train")));
                     cli::finish_training_options(c->train, *f, c->inference);
                     c->config_text = "[train]\n" + cmd.config_to_str(true, false);  // the section `cbst --config` reads
                     run_supervised(*c);
                   });
                 });

}  // namespace
}  // namespace cbst
