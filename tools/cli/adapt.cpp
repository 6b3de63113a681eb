// cbst adapt: self-training rounds (ST, CBST, CBST-SP) from a source model.
#include "selftrain/adapt.h"
#include "tools/cli/model_options.h"
#include "tools/cli/recipe.h"
#include "tools/cli/registry.h"
#include "tools/cli/validators.h"
#include "tools/cli/training_options.h"

namespace cbst {
namespace {

cli::Command reg({.parent = "", .name = "adapt", .help = "Self-training rounds: source-only, st, cbst, st-sp, cbst-sp"},
                 [](CLI::App& cmd) {
                   auto c = std::make_shared<AdaptConfig>();
                   auto f = std::make_shared<cli::TrainingFlags>();
                   auto method = std::make_shared<std::string>("cbst");
                   auto portion = std::make_shared<std::string>("0.2,0.05,0.5");
                   auto source_portion = std::make_shared<std::string>("1.0,0.0,1.0");
                   auto pool_stride = std::make_shared<int64_t>(0);
                   cmd.add_option("--source", c->source, "labelled source dataset KIND=PATH[:SPLIT] (split default train)")->required();
                   cmd.add_option("--target", c->target, "unlabelled target dataset KIND=PATH[:SPLIT]")->required();
                   auto target_split = std::make_shared<std::string>();
                   cmd.add_option("--target-split", *target_split,
                                  "split of --target to self-train on (default train; the same as --target KIND=PATH:SPLIT)");
                   cmd.add_option("--eval", c->eval, "evaluation set KIND=PATH[:SPLIT] (split default val)");
                   cmd.add_option("--model", c->model,
                                  "the network; small-deeplabv3plus brings its recipe (the demo's) to the options not "
                                  "given, the others the plain defaults (README, \"The training recipe\")")->check(CLI::IsMember(model_names()));
                   cli::add_classes_option(cmd, c->num_classes);
                   cmd.add_option("--init", c->init, "source model: a cbst checkpoint (from cbst train) or external weights");
                   cli::add_allow_partial_flag(cmd, c->allow_partial);
                   cmd.add_option("--method", *method, "source-only, st, cbst, st-sp or cbst-sp")->capture_default_str();
                   cmd.add_option("--prior", c->prior, "spatial prior from cbst priors (st-sp, cbst-sp)");
                   cmd.add_option("--rounds", c->rounds, "self-training rounds")->check(cbst::cli::InRange(1, 1000))->capture_default_str();
                   cmd.add_option("--portion", *portion, "pseudo-label portion P0,STEP,MAX")->capture_default_str();
                   cmd.add_option("--source-portion", *source_portion, "source subset portion P0,STEP,MAX")->capture_default_str();
                   cmd.add_option("--epochs-per-round", c->epochs_per_round, "epochs per round")->check(cbst::cli::InRange(1, 1000))->capture_default_str();
                   cmd.add_option("--lr-decay", c->lr_decay, "learning rate divided by this after each round")->check(CLI::Validator([](std::string& v) { return std::strtod(v.c_str(), nullptr) > 0 ? std::string() : "must be > 0 (1 keeps the learning rate)"; }, "> 0"))->default_str("1.4142135623730951");  // in full: config.toml reads it back as √2
                   cmd.add_option("--round-schedule", c->round_schedule,
                                  "learning rate within a round: constant (the authors') or poly (decayed to 0 by its end)")
                       ->check(CLI::IsMember({"constant", "poly"}))->capture_default_str();
                   cmd.add_option("--pool-stride", *pool_stride, "keep every K-th pixel in the threshold pools; 0: 1, or 4 with --pool-sampling authors")->check(cbst::cli::InRange(0, 1024));
                   cmd.add_option("--pool-sampling", c->pool_sampling,
                                  "which pixels enter the threshold pools: pixel-index (index in the image a multiple of K) or "
                                  "authors (every K-th pixel of each class per image, plus one 0.0 per pool, as the authors' code)")
                       ->check(CLI::IsMember({"pixel-index", "authors"}))->capture_default_str();
                   cmd.add_option("--regularizer", c->regularizer,
                                  "CRST regulariser: none, mrkld (KL(uniform||p) on the target pixels) or lrent (soft pseudo-labels)")
                       ->check(CLI::IsMember({"none", "mrkld", "lrent"}))->capture_default_str();
                   cmd.add_option("--reg-weight", c->reg_weight,
                                  "regulariser weight: MRKLD's W or LRENT's alpha; negative: the regulariser's default (MRKLD 0.01, the authors' effective 0.1*0.1; LRENT 0.25)")
                       ->check(cbst::cli::InRange(-1.0, 1e6));
                   cmd.add_option("--mine-prob", c->mining.probability, "probability of a rare-class target crop")->check(cbst::cli::InRange(0.0, 1.0))->capture_default_str();
                   cmd.add_option("--rare-fraction", c->mining.rare_fraction, "predicted share under which a class is rare")->capture_default_str();
                   cli::add_training_options(cmd, c->train, *f);
                   cmd.get_option("--scales")->description("test scales the pseudo-labels average over, e.g. 0.9,1.0,1.2");
                   cmd.get_option("--flip")->description("pseudo-labels also average the horizontally flipped image");
                   auto eval_scales = std::make_shared<std::string>("1.0");
                   cmd.add_option("--eval-scales", *eval_scales, "test scales of the rounds' evaluations")
                       ->capture_default_str()->check(cli::ScaleList());
                   cmd.add_flag("--eval-flip", c->eval_inference.flip,
                                "the rounds' evaluations also average the horizontally flipped image");
                   cmd.add_option("--prob-cache", c->prob_cache_memory, "where the round's target probabilities are cached: host or device")
                       ->check(CLI::IsMember({"host", "device"}))->capture_default_str();
                   cmd.add_option("--prob-cache-precision", c->prob_cache_precision, "f32 or f16 (half the memory)")
                       ->check(CLI::IsMember({"f32", "f16"}))->capture_default_str();
                   cmd.add_option("--previews", c->previews, "colourised pseudo-label previews per round");
                   cmd.add_option("--run", c->run, "run folder")->required();
                   cmd.add_flag("--resume", c->resume, "continue the run in --run after its last finished round");
                   cmd.add_flag("--keep-checkpoints", c->keep_checkpoints, "keep every round's checkpoint");
                   cmd.add_flag("--adabn", c->adabn,
                                "re-estimate the batch-norm statistics on the target images (AdaBN) before round 1's "
                                "pseudo-labels and after every round's training");
                   cmd.add_flag("--target-jitter", c->target_jitter,
                                "apply --color-jitter and --blur to the pseudo-labelled target images as well (the "
                                "pseudo-labels still come from the plain images; DACS's and DAFormer's strong augmentation)");
                   cmd.add_flag("--label-oracle", c->label_oracle,
                                "a diagnostic for a labelled target: every pixel a round's rule labels takes its true "
                                "label, so the run shows what the rule's choice of pixels would give if each label it "
                                "gave were right");
                   cmd.callback([c, f, method, portion, source_portion, target_split, pool_stride, eval_scales, &cmd] {
                     cli::take_model_of_init(cmd, c->init, c->model);  // --model left out
                     std::tie(c->target, c->target_split) =
                         cli::dataset_and_split(c->target, *target_split, "train", "--target", "--target-split");
                     std::vector<cli::RecipeOption> recipe = cli::model_recipe(c->model, "adapt");
                     if (!recipe.empty() && cmd.count("--crop") == 0)  // crops as tall as the target images
                       recipe.push_back({"--crop", std::to_string(cli::shorter_image_side(
                                                       c->target, c->target_split, c->train.resize_long_side))});
                     c->recipe_note = cli::recipe_note(c->model, cli::apply_recipe(cmd, recipe));
                     c->method = adapt_method_from_name(*method);
                     c->portion = PortionSchedule::parse(*portion);
                     c->source_portion = PortionSchedule::parse(*source_portion);
                     cli::finish_training_options(c->train, *f, c->inference);
                     c->eval_inference.scales = cli::parse_scales(*eval_scales, "--eval-scales");
                     c->pool_stride = *pool_stride > 0 ? *pool_stride : c->pool_sampling == "authors" ? 4 : 1;
                     c->config_text = "[adapt]\n" + cmd.config_to_str(true, false);  // the section `cbst --config` reads
                     run_adaptation(*c);
                   });
                 });

}  // namespace
}  // namespace cbst
