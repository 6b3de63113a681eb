// cbst demo: the whole method on the synthetic benchmark (selftrain/demo.h), no downloads.
//
//   cbst demo [--device cpu|cuda] [--quick] [--out DIR] [--seed S] [--size HxW]
//             [--source N] [--target-train N] [--target-val N] [--source-epochs N]
//             [--oracle-epochs N] [--rounds N] [--epochs-per-round N] [--lr X] [--adapt-lr X]
//             [--batch N] [--crop N] [--adapt-crop N] [--panels N] [--model NAME] [--color-jitter B,C,S,H[,P]]
//             [--blur P,SMIN,SMAX] [--style-gap G|LO,HI]
//             [--warmup-iters N] [--prior-support PX] [--adapt-init adabn|source]
//             [--adapt-adabn start|rounds] [--adapt-flip on|off] [--adapt-target-jitter on|off]
//             [--adapt-scales S,S,...]
//
// Options left out take the defaults of the full demo or, with --quick, of the smoke run.
#include <cstdio>
#include <memory>
#include <string>

#include "engine/check.h"
#include "engine/format.h"
#include "selftrain/demo.h"
#include "selftrain/inference.h"
#include "tools/cli/registry.h"
#include "tools/cli/validators.h"
#include "tools/cli/sizes.h"
#include "tools/cli/training_options.h"

namespace cbst {
namespace {

struct DemoFlags {
  std::string device = "cpu";
  std::string size;
  std::string portion;
  std::string source_portion;
  std::string scale_range;
  std::string color_jitter;
  std::string blur;
  std::string style_gap;
  std::string adapt_flip;  // on or off
  std::string adapt_target_jitter;  // on or off
  std::string adapt_scales;
  DemoConfig given;  // values of the options the user passed
};

// "0.2,0.05,0.5": numbers as a person writes them.
std::string numbers(std::initializer_list<double> values) {
  std::string out;
  for (double v : values) out += (out.empty() ? "" : ",") + format_g(v);
  return out;
}

void parse_size(const std::string& s, DemoConfig& c) {
  const cli::Size2 size = cli::parse_size(s, "--size", 16, 2048, "96x192");
  c.height = int(size.height), c.width = int(size.width);
}

cli::Command reg(
    {.parent = "", .name = "demo",
     .help = "The whole method on the synthetic benchmark: source-only, ST, CBST, CBST-SP, oracle; table and report.html"},
    [](CLI::App& cmd) {
      // The defaults depend on --quick, so each option's text names both; the variables'
      // initial values (what CLI11 would capture) are not the defaults.
      cmd.option_defaults()->always_capture_default(false);
      auto f = std::make_shared<DemoFlags>();
      DemoConfig& g = f->given;
      const DemoConfig full = demo_defaults(false), quick = demo_defaults(true);
      auto both = [](auto a, auto b) {
        return " (default " + numbers({double(a)}) + ", --quick " + numbers({double(b)}) + ")";
      };
      cmd.add_option("--device", f->device, "cpu, cuda or cuda:N")->capture_default_str();
      cmd.add_flag("--quick", g.quick, "a smoke run on tiny images (well under a minute on two cores)");
      cmd.add_option("--out", g.out, "output folder (replaced if it holds an earlier demo)")->capture_default_str();
      cmd.add_option("--seed", g.seed, "seed of the benchmark and of every training run")->capture_default_str();
      cmd.add_option("--size", f->size, "image size N or HxW (default " + std::to_string(full.height) + "x" +
                                            std::to_string(full.width) + ", --quick " + std::to_string(quick.height) +
                                            "x" + std::to_string(quick.width) + ")");
      cmd.add_option("--source", g.source_images, "source images" + both(full.source_images, quick.source_images))
          ->check(cbst::cli::InRange(1, 100000));
      cmd.add_option("--target-train", g.target_train,
                     "target training images" + both(full.target_train, quick.target_train))->check(cbst::cli::InRange(1, 100000));
      cmd.add_option("--target-val", g.target_val, "target val images" + both(full.target_val, quick.target_val))
          ->check(cbst::cli::InRange(1, 100000));
      cmd.add_option("--source-epochs", g.source_epochs,
                     "source-only epochs" + both(full.source_epochs, quick.source_epochs))->check(cbst::cli::InRange(1, 10000));
      cmd.add_option("--oracle-epochs", g.oracle_epochs,
                     "oracle epochs" + both(full.oracle_epochs, quick.oracle_epochs))->check(cbst::cli::InRange(1, 10000));
      cmd.add_option("--rounds", g.rounds, "self-training rounds" + both(full.rounds, quick.rounds))
          ->check(cbst::cli::InRange(1, 100));
      cmd.add_option("--epochs-per-round", g.epochs_per_round,
                     "epochs per round" + both(full.epochs_per_round, quick.epochs_per_round))->check(cbst::cli::InRange(1, 100));
      cmd.add_option("--model", g.model, "network (default " + full.model + ")");
      cmd.add_option("--color-jitter", f->color_jitter,
                     "photometric jitter of the source images B,C,S,H[,P] (default " + full.color_jitter.str() + "; 0: off)");
      cmd.add_option("--blur", f->blur,
                     "random Gaussian blur of the source images P,SIGMA_MIN,SIGMA_MAX (default " + full.blur.str() +
                         "; 0: off)");
      cmd.add_option("--warmup-iters", g.warmup_iters,
                     "warm-up steps of source-only and oracle training" + both(full.warmup_iters, quick.warmup_iters))
          ->check(cbst::cli::InRange(0, 1000000));
      cmd.add_option("--class-weights", g.class_weights, "cross-entropy of every run: none or balanced (default " +
                                                             full.class_weights + ")")
          ->check(CLI::IsMember({"none", "balanced"}));
      cmd.add_option("--rare-class-sampling", g.rare_class_sampling,
                     "probability that a labelled crop is centred on a rare class it holds (default " +
                         numbers({full.rare_class_sampling}) + ")")->check(cbst::cli::InRange(0.0, 1.0));
      cmd.add_option("--rare-class-draw", g.rare_class_draw,
                     "rare-class sampling draws first: image or class (DAFormer's) (default " + full.rare_class_draw +
                         ")")
          ->check(CLI::IsMember({"image", "class"}));
      cmd.add_option("--portion", f->portion, "pseudo-label portion P0,STEP,MAX (default 0.2,0.05,0.5)");
      cmd.add_option("--source-portion", f->source_portion,
                     "share of the source set mixed into each round P0,STEP,MAX (default " +
                         numbers({full.source_portion.start, full.source_portion.step, full.source_portion.max}) + ")");
      cmd.add_option("--scale-range", f->scale_range, "random scale MIN,MAX of every run's training images (default " +
                                                          numbers({full.min_scale, full.max_scale}) + ")");
      cmd.add_option("--round-schedule", g.round_schedule, "learning rate within a round: constant or poly (default " +
                                                               full.round_schedule + ")")
          ->check(CLI::IsMember({"constant", "poly"}));
      cmd.add_option("--lr", g.lr, "learning rate of source-only and oracle (default " + numbers({full.lr}) + ")")
          ->check(cbst::cli::Positive());
      cmd.add_option("--adapt-lr", g.adapt_lr, "learning rate of the first self-training round (default " +
                                                   numbers({full.adapt_lr}) + ")")->check(cbst::cli::Positive());
      cmd.add_option("--batch", g.batch, "images per batch" + both(full.batch, quick.batch))->check(cbst::cli::InRange(1, 1024));
      cmd.add_option("--crop", g.crop, "square training crop of source-only and oracle" + both(full.crop, quick.crop))
          ->check(cbst::cli::InRange(8, 4096));
      cmd.add_option("--adapt-crop", g.adapt_crop,
                     "square training crop of ST, CBST and CBST-SP (default: the image's shorter side)")
          ->check(cbst::cli::InRange(8, 4096));
      cmd.add_option("--panels", g.panels, "sample panels in the report" + both(full.panels, quick.panels))
          ->check(cbst::cli::InRange(0, 64));
      cmd.add_option("--workers", g.workers, "data-loading threads" + both(full.workers, quick.workers))->check(cbst::cli::InRange(0, 64));
      cmd.add_option("--style-gap", f->style_gap, "how far the target's look is from the source's: G or LO,HI "
                                                   "drawn per image, within 0..1 (as cbst synth; default 0.65)");
      cmd.add_option("--prior-support", g.prior_support,
                     "the spatial prior's Gaussian support in image pixels, sigma a sixth of it (default " +
                         numbers({full.prior_support}) + ", as cbst priors)")
          ->check(cbst::cli::InRange(0.0, 1e6));
      cmd.add_option("--adapt-init", g.adapt_init,
                     "what ST, CBST and CBST-SP start from: adabn (the source model with the target's batch-norm "
                     "statistics) or source (the source model itself) (default " + full.adapt_init + ")")
          ->check(CLI::IsMember({"adabn", "source"}));
      cmd.add_option("--adapt-adabn", g.adapt_adabn,
                     "when ST, CBST and CBST-SP re-estimate batch-norm statistics on the target: start (the model "
                     "they start from) or rounds (also after every round, cbst adapt --adabn) (default " +
                         full.adapt_adabn + ")")
          ->check(CLI::IsMember({"start", "rounds"}));
      cmd.add_option("--adapt-flip", f->adapt_flip,
                     "whether ST, CBST and CBST-SP average the mirrored image into their pseudo-labels: on or off "
                     "(default " + std::string(full.adapt_flip ? "on" : "off") + ")")
          ->check(CLI::IsMember({"on", "off"}));
      cmd.add_option("--adapt-target-jitter", f->adapt_target_jitter,
                     "whether ST, CBST and CBST-SP jitter the pseudo-labelled target crops with the source's colour "
                     "jitter too (cbst adapt --target-jitter): on or off (default " +
                         std::string(full.adapt_target_jitter ? "on" : "off") + ")")
          ->check(CLI::IsMember({"on", "off"}));
      cmd.add_option("--adapt-scales", f->adapt_scales,
                     "the scales ST, CBST and CBST-SP average their pseudo-labels over, e.g. 0.9,1,1.2; 1: one "
                     "scale (default " + scales_text(full.adapt_scales) + ")")
          ->check(cbst::cli::ScaleList());
      cmd.add_option("--regularizer", g.regularizer,
                     "CRST regulariser of ST, CBST and CBST-SP: none, mrkld or lrent (default none)")
          ->check(CLI::IsMember({"none", "mrkld", "lrent"}));
      cmd.add_option("--reg-weight", g.reg_weight,
                     "its weight: MRKLD's W (default 0.01) or LRENT's alpha (default 0.25)")->check(cbst::cli::InRange(0.0, 1e6));
      cmd.callback([f, &cmd] {
        const DemoConfig& g = f->given;
        DemoConfig c = demo_defaults(g.quick);
        auto take = [&cmd](const char* flag, auto& dst, const auto& src) {
          if (cmd.count(flag)) dst = src;
        };
        take("--out", c.out, g.out);
        take("--seed", c.seed, g.seed);
        take("--source", c.source_images, g.source_images);
        take("--target-train", c.target_train, g.target_train);
        take("--target-val", c.target_val, g.target_val);
        take("--source-epochs", c.source_epochs, g.source_epochs);
        take("--oracle-epochs", c.oracle_epochs, g.oracle_epochs);
        take("--rounds", c.rounds, g.rounds);
        take("--epochs-per-round", c.epochs_per_round, g.epochs_per_round);
        take("--lr", c.lr, g.lr);
        take("--adapt-lr", c.adapt_lr, g.adapt_lr);
        take("--batch", c.batch, g.batch);
        take("--crop", c.crop, g.crop);
        take("--adapt-crop", c.adapt_crop, g.adapt_crop);
        take("--panels", c.panels, g.panels);
        take("--workers", c.workers, g.workers);
        if (cmd.count("--style-gap")) c.style_gap = data::parse_style_gap(f->style_gap, "--style-gap");
        take("--model", c.model, g.model);
        take("--warmup-iters", c.warmup_iters, g.warmup_iters);
        take("--class-weights", c.class_weights, g.class_weights);
        take("--rare-class-sampling", c.rare_class_sampling, g.rare_class_sampling);
        take("--rare-class-draw", c.rare_class_draw, g.rare_class_draw);
        take("--regularizer", c.regularizer, g.regularizer);
        take("--reg-weight", c.reg_weight, g.reg_weight);
        take("--prior-support", c.prior_support, g.prior_support);
        take("--adapt-init", c.adapt_init, g.adapt_init);
        take("--adapt-adabn", c.adapt_adabn, g.adapt_adabn);
        if (cmd.count("--adapt-flip")) c.adapt_flip = f->adapt_flip == "on";
        if (cmd.count("--adapt-target-jitter")) c.adapt_target_jitter = f->adapt_target_jitter == "on";
        if (cmd.count("--adapt-scales")) c.adapt_scales = cli::parse_scales(f->adapt_scales, "--adapt-scales");
        if (!f->color_jitter.empty()) c.color_jitter = data::ColorJitter::parse(f->color_jitter);
        if (!f->blur.empty()) c.blur = data::GaussianBlur::parse(f->blur);
        if (!f->size.empty()) parse_size(f->size, c);
        if (!f->portion.empty()) c.portion = PortionSchedule::parse(f->portion);
        if (!f->source_portion.empty()) c.source_portion = PortionSchedule::parse(f->source_portion);
        if (!f->scale_range.empty()) {
          char extra = 0;
          if (std::sscanf(f->scale_range.c_str(), "%lf,%lf%c", &c.min_scale, &c.max_scale, &extra) != 2 ||
              !(c.min_scale > 0 && c.max_scale >= c.min_scale && c.max_scale <= 8))
            CBST_THROW("--scale-range '", f->scale_range, "' is not MIN,MAX with 0 < MIN <= MAX <= 8 (e.g. 0.5,2)");
        }
        take("--round-schedule", c.round_schedule, g.round_schedule);
        c.device = Device::parse(f->device);
        run_demo(c);
      });
    });

}  // namespace
}  // namespace cbst
