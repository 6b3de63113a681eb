#include "selftrain/demo.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <utility>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/label_map.h"
#include "data/synthetic.h"
#include "engine/check.h"
#include "engine/format.h"
#include "models/weight_import.h"
#include "selftrain/batch_norm_statistics.h"
#include "selftrain/checkpoint.h"
#include "selftrain/crst.h"
#include "selftrain/demo_report.h"
#include "selftrain/evaluate.h"
#include "selftrain/inference.h"
#include "selftrain/run_dir.h"
#include "selftrain/spatial_prior.h"
#include "selftrain/supervised.h"
#include "weights/load_weights.h"

namespace cbst {

namespace fs = std::filesystem;

const std::vector<std::string> kDemoMethods = {"source-only", "adabn", "st", "cbst", "cbst-sp", "oracle"};

DemoConfig demo_defaults(bool quick) {
  DemoConfig c;
  c.quick = quick;
  if (quick) {
    c.height = 48, c.width = 96;
    c.source_images = 32, c.target_train = 32, c.target_val = 16;
    c.crop = 48;
    c.source_epochs = 3, c.oracle_epochs = 3;
    c.warmup_iters = 5;  // a tenth of the run, as the full demo's
    c.log_every = 2;
    c.rounds = 2;
    c.panels = 2;
  }
  return c;
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string num(double v) { return format_g(v); }

// One step's options, written both as a `cbst` command line (for the report) and as the
// run folder's config.toml (what `cbst --config FILE SUBCOMMAND` reads back).
struct StepOptions {
  std::string subcommand;
  // --name value; value "" = a flag given, "false" = a flag turned off (--name=false), which
  // keeps a line reproducible where the model's recipe turns the flag on (tools/cli/recipe.h)
  std::vector<std::pair<std::string, std::string>> options;

  StepOptions& add(const std::string& name, const std::string& value) {
    options.emplace_back(name, value);
    return *this;
  }
  std::string command() const {
    std::string s = "cbst " + subcommand;
    for (auto& [k, v] : options) s += " --" + k + (v.empty() ? "" : v == "false" ? "=false" : " " + v);
    return s;
  }
  std::string toml() const {
    std::string s = "# written by cbst demo\n[" + subcommand + "]\n";
    for (auto& [k, v] : options) {
      const bool number = !v.empty() && v.find_first_not_of("0123456789.-e") == std::string::npos;
      s += k + " = " + (v.empty() ? "true" : v == "false" ? v : number ? v : json_text(v)) + "\n";  // a JSON string is a TOML one
    }
    return s;
  }
};

// The demo's folder: created, or an earlier demo's outputs removed. Anything that is not a
// demo is left alone.
void prepare_out(const std::string& out) {
  std::error_code ec;
  if (!fs::exists(out, ec)) {
    fs::create_directories(out, ec);
    CBST_CHECK(!ec, "cannot create ", out, ": ", ec.message(), "; pass another --out DIR");
    return;
  }
  CBST_CHECK(fs::is_directory(out), out, " exists and is not a folder; pass another --out DIR");
  if (fs::is_empty(out)) return;
  CBST_CHECK(fs::exists(fs::path(out) / "demo.json"), out,
             " is not empty and holds no earlier cbst demo (no demo.json); pass another --out DIR or remove it");
  for (const std::string& name : kDemoMethods) fs::remove_all(fs::path(out) / name);
  for (const char* name :
       {"data", "prior.safetensors", "adabn.safetensors", "table.md", "results.json", "report.html", "demo.json"})
    fs::remove_all(fs::path(out) / name);
}

// The row of `name` in kDemoMethods.
size_t method_index(const std::string& name) {
  return size_t(std::find(kDemoMethods.begin(), kDemoMethods.end(), name) - kDemoMethods.begin());
}

void stage(int index, int total, const std::string& what) {
  std::printf("\n=== cbst demo [%d/%d] %s ===\n", index, total, what.c_str());
  std::fflush(stdout);
}

data::Image predict_color(SegmentationModel& model, const std::string& convention, const data::Image& image,
                          Device device) {
  const Tensor labels = predict_labels(model, image_tensor(image, convention, device)).to(Device::cpu());
  data::Labels l = data::Labels::blank(image.width, image.height);
  const uint8_t* p = labels.data<uint8_t>();
  l.ids.assign(p, p + l.ids.size());
  return data::colorize(l, data::ClassSpace::cityscapes19);
}

}  // namespace

void run_demo(const DemoConfig& cfg) {
  CBST_CHECK(cfg.height >= 16 && cfg.width >= 16, "--size ", cfg.height, "x", cfg.width,
             " is too small; the benchmark needs at least 16x16");
  CBST_CHECK(cfg.source_images > 0 && cfg.target_train > 0 && cfg.target_val > 0,
             "the demo needs at least one source, target-train and target-val image");
  const Clock::time_point t_start = Clock::now();
  prepare_out(cfg.out);
  const fs::path out(cfg.out);
  auto at = [&](const std::string& rel) { return (out / rel).string(); };
  {
    const Json marker = {{"generator", "cbst demo"}, {"seed", cfg.seed}, {"height", cfg.height}, {"width", cfg.width},
                         {"quick", int64_t(cfg.quick)}, {"device", cfg.device.str()}};
    data::write_text_atomic(at("demo.json"), json_text(marker) + "\n");
  }
  const int kStages = 9;
  std::vector<DemoStep> steps;
  const std::string device = cfg.device.str(), seed = std::to_string(cfg.seed);

  // 1. The benchmark.
  stage(1, kStages, "synthetic two-domain benchmark");
  StepOptions synth{"synth", {}};
  synth.add("out", at("data")).add("size", std::to_string(cfg.height) + "x" + std::to_string(cfg.width))
      .add("source", std::to_string(cfg.source_images)).add("target-train", std::to_string(cfg.target_train))
      .add("target-val", std::to_string(cfg.target_val)).add("seed", seed);
  if (cfg.style_gap != data::SynthStyleGap{}) synth.add("style-gap", data::style_gap_text(cfg.style_gap));
  Clock::time_point t0 = Clock::now();
  const data::SynthBenchmarkReport bench = data::write_synth_benchmark(
      {.out = at("data"),
       .params = {.height = cfg.height, .width = cfg.width, .seed = cfg.seed, .style_gap = cfg.style_gap},
       .source = cfg.source_images,
       .target_train = cfg.target_train,
       .target_val = cfg.target_val});
  std::printf("wrote %lld files (%dx%d): %d source, %d target-train, %d target-val images\n",
              (long long)bench.files_written, cfg.height, cfg.width, cfg.source_images, cfg.target_train,
              cfg.target_val);
  steps.push_back({"benchmark", synth.command(), seconds_since(t0)});
  const std::string source = "gta5=" + bench.gta5_root, target = "cityscapes=" + bench.cityscapes_root;
  const std::string eval = target + ":val";

  TrainingOptions train;
  train.batch = cfg.batch;
  train.crop_height = train.crop_width = cfg.crop;
  train.min_scale = cfg.min_scale;
  train.max_scale = cfg.max_scale;
  train.lr = cfg.lr;
  train.log_every = cfg.log_every;
  train.class_weights = cfg.class_weights;
  train.rare_class_sampling = cfg.rare_class_sampling;
  train.rare_class_draw = cfg.rare_class_draw;
  train.workers = cfg.workers;
  train.device = cfg.device;
  train.seed = cfg.seed;
  auto training_flags = [&](StepOptions& s, double lr, bool jitter, int64_t crop) {
    s.add("model", cfg.model).add("batch", std::to_string(cfg.batch)).add("crop", std::to_string(crop))
        .add("scale-range", num(cfg.min_scale) + "," + num(cfg.max_scale)).add("lr", num(lr));
    // Jitter and rare-class sampling are spelt out even when off: the model's recipe gives
    // them values where a command line leaves them out.
    s.add("color-jitter", jitter && cfg.color_jitter.enabled() ? cfg.color_jitter.str() : "0");
    if (jitter && cfg.blur.enabled()) s.add("blur", cfg.blur.str());
    if (cfg.class_weights != "none") s.add("class-weights", cfg.class_weights);
    s.add("rare-class-sampling", num(cfg.rare_class_sampling)).add("rare-class-draw", cfg.rare_class_draw);
    s.add("log-every", std::to_string(cfg.log_every)).add("workers", std::to_string(cfg.workers))
        .add("device", device).add("seed", seed);
  };
  // Source-only and oracle: poly decay after a warm-up. The oracle trains on target images,
  // which need no jitter toward another domain.
  auto supervised = [&](const std::string& name, const std::string& data, int64_t epochs, bool jitter) {
    StepOptions s{"train", {}};
    s.add("data", data).add("eval", eval).add("epochs", std::to_string(epochs)).add("poly", "")
        .add("warmup-iters", std::to_string(cfg.warmup_iters));
    training_flags(s, cfg.lr, jitter, cfg.crop);
    s.add("run", at(name));
    const Clock::time_point t = Clock::now();
    // Member by member: the configs' members without default initialisers would trip
    // -Wmissing-field-initializers under designated initialisation.
    SupervisedConfig c;
    c.data = data;
    c.eval = eval;
    c.epochs = epochs;
    c.model = cfg.model;
    c.poly = true;
    c.train = train;
    c.train.warmup_iters = cfg.warmup_iters;
    if (jitter) {
      c.train.color_jitter = cfg.color_jitter;
      c.train.blur = cfg.blur;
    }
    c.run = at(name);
    c.config_text = s.toml();
    run_supervised(c);
    steps.push_back({name, s.command(), seconds_since(t)});
  };

  // 2. Source-only model.
  stage(2, kStages, "source-only model (" + cfg.model + " on the labelled source)");
  supervised("source-only", source, cfg.source_epochs, true);
  const std::string source_model = at("source-only/checkpoints/final.safetensors");

  // 3. Spatial prior, smoothed by cfg.prior_support image pixels (DemoConfig says why).
  stage(3, kStages, "spatial prior from the source labels");
  t0 = Clock::now();
  const double support = cfg.prior_support, sigma = support / 6;
  const int64_t grid_h = std::max<int64_t>(1, cfg.height / cfg.prior_downsample);
  const int64_t grid_w = std::max<int64_t>(1, cfg.width / cfg.prior_downsample);
  {
    const data::Dataset src = data::open_dataset(source, {.split = "train"});
    const SpatialPriorResult prior = compute_spatial_prior_with_stats(
        src, {.height = grid_h, .width = grid_w, .sigma = sigma, .support = support});
    save_spatial_prior(at("prior.safetensors"), prior.prior,
                       {.sigma = sigma, .support = support, .image_height = prior.image_height,
                        .image_width = prior.image_width, .images = int64_t(prior.images), .source = source,
                        .class_space = "cityscapes19"});
    std::printf("prior: %lldx%lld grid from %zu source label maps (support %.1f px, sigma %.2f px)\n",
                (long long)grid_h, (long long)grid_w, prior.images, support, sigma);
  }
  StepOptions priors{"priors", {}};
  priors.add("data", source).add("size", std::to_string(grid_h) + "x" + std::to_string(grid_w))
      .add("support", num(support)).add("sigma", num(sigma)).add("out", at("prior.safetensors"));
  steps.push_back({"prior", priors.command(), seconds_since(t0)});

  // 4. AdaBN: the source model with the target training images' batch-norm statistics.
  stage(4, kStages, "AdaBN: the source model with the target's batch-norm statistics");
  t0 = Clock::now();
  const std::string adabn_model = at("adabn.safetensors");
  bool has_batch_norm = true;
  {
    const data::Dataset target_images = data::open_dataset(target, {.split = "train"});
    LoadedModel m = load_model(source_model, {.model = cfg.model, .num_classes = 19, .seed = cfg.seed});
    has_batch_norm = batch_norm_layer_count(*m.model) > 0;
    if (!has_batch_norm) {
      // Nothing to re-estimate (fcn8s-vgg16): the AdaBN row is the source model itself.
      std::printf("%s has no batch-norm layer: AdaBN leaves the source model as it is\n", cfg.model.c_str());
    } else {
      const BatchNormStatisticsSummary s = recompute_batch_norm_statistics(
          *m.model, target_images, {.batch = cfg.batch, .device = cfg.device, .input_convention = m.input_convention});
      std::printf("statistics of %lld batch-norm layers from %lld target training images\n", (long long)s.layers,
                  (long long)s.images);
    }
    weights::save_checkpoint(adabn_model, model_checkpoint(*m.model, m.input_convention));
  }
  if (has_batch_norm) {
    StepOptions adabn{"adabn", {}};
    adabn.add("checkpoint", source_model).add("data", target + ":train").add("batch", std::to_string(cfg.batch))
        .add("device", device).add("seed", seed).add("out", adabn_model);
    steps.push_back({"adabn", adabn.command(), seconds_since(t0)});
  }
  CBST_CHECK(cfg.adapt_init == "adabn" || cfg.adapt_init == "source", "--adapt-init '", cfg.adapt_init,
             "' is neither adabn nor source");
  const std::string adapt_init = cfg.adapt_init == "adabn" && has_batch_norm ? adabn_model : source_model;
  CBST_CHECK(cfg.adapt_adabn == "start" || cfg.adapt_adabn == "rounds", "--adapt-adabn '", cfg.adapt_adabn,
             "' is neither start nor rounds");
  const bool round_adabn = cfg.adapt_adabn == "rounds" && has_batch_norm;

  // 5. Self-training, one method at a time, each from the same model.
  const std::vector<std::pair<AdaptMethod, std::string>> adapt_methods = {
      {AdaptMethod::st, "ST"}, {AdaptMethod::cbst, "CBST"}, {AdaptMethod::cbst_sp, "CBST-SP"}};
  int stage_index = 5;
  for (const auto& [method, label] : adapt_methods) {
    const std::string name = adapt_method_name(method);
    stage(stage_index++, kStages, label + ": " + std::to_string(cfg.rounds) + " self-training rounds");
    const bool sp = method == AdaptMethod::cbst_sp;
    StepOptions s{"adapt", {}};
    s.add("source", source).add("target", target).add("eval", eval).add("init", adapt_init).add("method", name);
    if (sp) s.add("prior", at("prior.safetensors"));
    s.add("rounds", std::to_string(cfg.rounds)).add("round-schedule", cfg.round_schedule).add("portion", cfg.portion.str())
        .add("source-portion", cfg.source_portion.str())
        .add("epochs-per-round", std::to_string(cfg.epochs_per_round)).add("previews", std::to_string(cfg.panels));
    s.add("adabn", round_adabn ? "" : "false");
    s.add("flip", cfg.adapt_flip ? "" : "false");
    // Spelt out whenever the model's recipe (DemoConfig's default) might say otherwise, as --flip is.
    if (cfg.adapt_target_jitter || DemoConfig{}.adapt_target_jitter)
      s.add("target-jitter", cfg.adapt_target_jitter ? "" : "false");
    if (cfg.adapt_scales != std::vector<double>{1.0}) s.add("scales", scales_text(cfg.adapt_scales));
    if (cfg.regularizer != "none") {
      s.add("regularizer", cfg.regularizer);
      if (cfg.reg_weight >= 0) s.add("reg-weight", num(cfg.reg_weight));
    }
    training_flags(s, cfg.adapt_lr, true, cfg.self_training_crop());
    s.add("run", at(name));
    AdaptConfig a;
    a.model = cfg.model;
    a.source = source;
    a.target = target;
    a.eval = eval;
    a.init = adapt_init;
    a.adabn = round_adabn;
    a.inference.flip = cfg.adapt_flip;
    a.target_jitter = cfg.adapt_target_jitter;
    a.inference.scales = cfg.adapt_scales;
    a.method = method;
    if (sp) a.prior = at("prior.safetensors");
    a.rounds = cfg.rounds;
    a.round_schedule = cfg.round_schedule;
    a.regularizer = cfg.regularizer;
    a.reg_weight = cfg.reg_weight;
    a.portion = cfg.portion;
    a.source_portion = cfg.source_portion;
    a.epochs_per_round = cfg.epochs_per_round;
    a.train = train;
    a.train.lr = cfg.adapt_lr;
    a.train.crop_height = a.train.crop_width = cfg.self_training_crop();
    a.train.color_jitter = cfg.color_jitter;
    a.train.blur = cfg.blur;
    a.run = at(name);
    a.previews = cfg.panels;
    a.config_text = s.toml();
    const Clock::time_point t = Clock::now();
    run_adaptation(a);
    steps.push_back({name, s.command(), seconds_since(t)});
  }

  // 6. Oracle: the same network trained on the labelled target training split.
  stage(stage_index++, kStages, "oracle (" + cfg.model + " on the labelled target)");
  supervised("oracle", target, cfg.oracle_epochs, false);

  // 7. All six on the same val split with the same inference options.
  const data::Dataset val = data::open_dataset(target, {.split = "val"});
  const data::Dataset target_train = data::open_dataset(target, {.split = "train"});
  const std::vector<std::string> labels = {"Source only",  "AdaBN (target BN statistics)", "ST", "CBST", "CBST-SP",
                                           "Oracle (target labels)"};
  DemoReportInput report;
  report.out = cfg.out;
  report.config = cfg;
  report.steps = steps;
  std::vector<std::shared_ptr<SegmentationModel>> models;
  std::string convention;
  for (size_t i = 0; i < kDemoMethods.size(); ++i) {
    const std::string& name = kDemoMethods[i];
    LoadedModel built = load_model(name == "adabn" ? adabn_model : at(name + "/checkpoints/final.safetensors"),
                                   {.model = cfg.model, .num_classes = 19, .seed = cfg.seed});
    built.model->to(cfg.device);
    convention = built.input_convention;
    const data::EvalResult e = evaluate_model(*built.model, val,
                                              {.device = cfg.device, .input_convention = built.input_convention});
    double seconds = 0;
    for (const DemoStep& s : steps)
      if (s.name == name) seconds = s.seconds;
    report.methods.push_back({name, labels[i], e, seconds});
    models.push_back(built.model);
  }

  // Panels: the first target-train images, whose pseudo-labels the last CBST-SP round wrote.
  const std::string last_round = std::to_string(cfg.rounds);  // rounds count from 1
  report.pseudo_round = "round " + last_round;
  const data::LabelMap gt_map = target_train.label_map(data::ClassSpace::cityscapes19);
  for (size_t i = 0; i < target_train.size() && int(i) < cfg.panels; ++i) {
    const data::LoadedSample s = target_train.load(i, gt_map);
    DemoPanel p{.stem = target_train.sample(i).stem, .image = s.image};
    p.ground_truth = data::colorize(s.labels, data::ClassSpace::cityscapes19);
    p.source_only = predict_color(*models[method_index("source-only")], convention, s.image, cfg.device);
    p.cbst_sp = predict_color(*models[method_index("cbst-sp")], convention, s.image, cfg.device);
    const data::RawLabels raw =
        data::read_label_values(at("cbst-sp/rounds/" + last_round + "/pseudo/" + p.stem + ".png"));
    data::Labels pseudo{raw.width, raw.height, std::vector<uint8_t>(raw.values.begin(), raw.values.end())};
    p.pseudo_label = data::colorize(pseudo, data::ClassSpace::cityscapes19);
    report.panels.push_back(std::move(p));
  }

  // 8. Outputs.
  stage(kStages, kStages, "results");
  report.total_seconds = seconds_since(t_start);
  const std::string table = demo_table_text(report.methods);
  data::write_text_atomic(at("table.md"), demo_table_markdown(report.methods));
  Json results = {{"generator", "cbst demo"}, {"seed", cfg.seed}, {"device", device},
                  {"size", std::to_string(cfg.height) + "x" + std::to_string(cfg.width)},
                  {"quick", int64_t(cfg.quick)}, {"source_images", cfg.source_images},
                  {"target_train", cfg.target_train}, {"target_val", cfg.target_val},
                  {"seconds", report.total_seconds}, {"regularizer", cfg.regularizer},
                  {"reg_weight", cfg.regularizer == "none" ? 0.0
                                 : cfg.reg_weight >= 0    ? cfg.reg_weight
                                                          : default_reg_weight(regularizer_from_name(cfg.regularizer))},
                  {"methods", Json::array()}, {"commands", Json::array()}};
  for (const DemoMethodResult& m : report.methods)
    results["methods"].push_back({{"method", m.name}, {"label", m.label}, {"seconds", m.seconds}, {"eval", data::to_json(m.eval)}});
  for (const DemoStep& s : steps) results["commands"].push_back(s.command);
  data::write_text_atomic(at("results.json"), json_text(results, 2) + "\n");
  write_demo_report(report);

  std::printf("\nPer-class IoU (%%) on the synthetic target val split (%d images, %dx%d, seed %llu):\n\n%s\n",
              cfg.target_val, cfg.height, cfg.width, (unsigned long long)cfg.seed, table.c_str());
  std::printf("%s\n", rare_class_summary(report.methods).c_str());
  const DemoMethodResult &src = report.methods[method_index("source-only")],
                         &sp = report.methods[method_index("cbst-sp")], &oracle = report.methods[method_index("oracle")];
  if (oracle.eval.miou > src.eval.miou)
    std::printf("CBST-SP closes %.0f%% of the gap between source-only (%.1f) and the oracle (%.1f).\n",
                gap_share_percent(src.eval.miou, sp.eval.miou, oracle.eval.miou), 100 * src.eval.miou,
                100 * oracle.eval.miou);
  const DemoMethodResult& adabn_row = report.methods[method_index("adabn")];
  std::printf("AdaBN (the target's batch-norm statistics, no labels) scores %.1f: %+.1f over source-only; CBST-SP %+.1f "
              "over AdaBN.\n",
              100 * adabn_row.eval.miou, 100 * (adabn_row.eval.miou - src.eval.miou),
              100 * (sp.eval.miou - adabn_row.eval.miou));
  std::printf("report: %s\n", at("report.html").c_str());
  std::printf("cbst demo: done in %.0f s\n", seconds_since(t_start));
}

}  // namespace cbst
