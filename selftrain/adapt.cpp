#include "selftrain/adapt.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>

#include <nlohmann/json.hpp>

#include "data/evaluation.h"
#include "data/image.h"
#include "engine/cuda_context.h"
#include "engine/format.h"
#include "models/weight_import.h"
#include "layers/soft_cross_entropy.h"
#include "selftrain/batch_norm_statistics.h"
#include "selftrain/checkpoint.h"
#include "selftrain/class_weights.h"
#include "selftrain/crst.h"
#include "selftrain/evaluate.h"
#include "selftrain/round_labels.h"
#include "selftrain/run_records.h"
#include "selftrain/run_report.h"
#include "selftrain/spatial_prior.h"
#include "selftrain/trainer.h"

namespace cbst {

namespace fs = std::filesystem;

AdaptMethod adapt_method_from_name(const std::string& name) {
  if (name == "source-only") return AdaptMethod::source_only;
  if (name == "st") return AdaptMethod::st;
  if (name == "cbst") return AdaptMethod::cbst;
  if (name == "st-sp") return AdaptMethod::st_sp;
  if (name == "cbst-sp") return AdaptMethod::cbst_sp;
  CBST_THROW("unknown method '", name, "'; expected source-only, st, cbst, st-sp or cbst-sp");
}

const char* adapt_method_name(AdaptMethod m) {
  switch (m) {
    case AdaptMethod::source_only: return "source-only";
    case AdaptMethod::st: return "st";
    case AdaptMethod::cbst: return "cbst";
    case AdaptMethod::st_sp: return "st-sp";
    case AdaptMethod::cbst_sp: return "cbst-sp";
  }
  return "?";
}

double PortionSchedule::at(int64_t round) const { return std::min(start + double(round) * step, max); }

PortionSchedule PortionSchedule::parse(const std::string& text) {
  PortionSchedule s;
  char extra = 0;
  const int n = std::sscanf(text.c_str(), "%lf,%lf,%lf%c", &s.start, &s.step, &s.max, &extra);
  if (!(n == 3 && s.start >= 0 && s.start <= s.max && s.max <= 1 && s.step >= 0))
    CBST_THROW("portion schedule '", text, "' is not P0,STEP,MAX with 0 <= P0 <= MAX <= 1 and STEP >= 0 (e.g. 0.2,0.05,0.5)");
  return s;
}

std::string PortionSchedule::str() const {
  return format_g(start) + "," + format_g(step) + "," + format_g(max);
}

namespace {

std::vector<double> eval_ious(const data::EvalResult& e) {
  std::vector<double> v;
  for (auto& c : e.classes) v.push_back(c.iou);
  return v;
}

std::vector<std::string> eval_names(const data::EvalResult& e) {
  std::vector<std::string> v;
  for (auto& c : e.classes) v.push_back(c.name);
  return v;
}

}  // namespace

std::vector<size_t> source_subset_order(size_t n, uint64_t seed) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  Generator gen(seed ^ 0x736f75726365ull);
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[gen.next_below(i)]);
  return order;
}

namespace {

data::Dataset subset(const data::Dataset& d, const std::vector<size_t>& order, size_t count) {
  std::vector<data::Sample> samples;
  for (size_t k = 0; k < count; ++k) samples.push_back(d.sample(order[k]));
  return data::Dataset(d.kind(), d.root(), d.split(), d.label_encoding(), std::move(samples));
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

void run_adaptation(const AdaptConfig& cfg) {
  RunDir run(cfg.run, cfg.resume);
  if (!cfg.resume) run.write_text("config.toml", cfg.config_text);
  // What does not change the self-training itself may change on resume (the evaluations'
  // test scales and flip may; the pseudo-labels' may not).
  if (cfg.resume)
    run.check_resume(cfg.config_text, {"workers", "device", "log-every", "eval", "eval-scales", "eval-flip", "previews",
                                       "keep-checkpoints", "prob-cache", "deterministic", "no-overlap-allreduce"});
  set_deterministic(cfg.train.deterministic);
  const bool adapt = cfg.method != AdaptMethod::source_only;
  const bool use_prior = cfg.method == AdaptMethod::st_sp || cfg.method == AdaptMethod::cbst_sp;
  CBST_CHECK(!use_prior || !cfg.prior.empty(), adapt_method_name(cfg.method),
             " needs a spatial prior: make one with `cbst priors --data SOURCE --size HxW --out prior.safetensors`",
             " and pass --prior");

  if (cfg.round_schedule != "constant" && cfg.round_schedule != "poly")
    CBST_THROW("--round-schedule '", cfg.round_schedule, "' is not constant or poly");
  const Regularizer regularizer = regularizer_from_name(cfg.regularizer);
  const double reg_weight = cfg.reg_weight < 0 ? default_reg_weight(regularizer) : cfg.reg_weight;
  const PoolSampling pool_sampling = pool_sampling_from_name(cfg.pool_sampling);
  if (regularizer != Regularizer::none && !adapt)
    CBST_THROW("--regularizer ", cfg.regularizer, " regularises the pseudo-labelled target, which ",
               "--method source-only does not have; use st, cbst, st-sp or cbst-sp");
  if (regularizer == Regularizer::lrent && !(reg_weight > 0))
    CBST_THROW("--reg-weight ", reg_weight, " is not a valid LRENT α; it must be positive (the ",
               "authors use 0.25)");
  if (regularizer == Regularizer::lrent && cfg.train.class_weights != "none")
    CBST_THROW("--class-weights ", cfg.train.class_weights, " does not apply to LRENT's soft ",
               "pseudo-labels; use --class-weights none with --regularizer lrent");
  if (cfg.label_oracle && !adapt)
    CBST_THROW("--label-oracle gives the pseudo-labelled pixels their true labels, and --method source-only ",
               "labels none; use st, cbst, st-sp or cbst-sp");
  if (cfg.label_oracle && regularizer == Regularizer::lrent)
    CBST_THROW("--label-oracle replaces the hard pseudo-labels, and LRENT trains on soft ones; use it with ",
               "--regularizer none or mrkld");
  const auto [source_spec, source_split] = split_eval_spec(cfg.source, "train");
  const data::Dataset source = data::open_dataset(source_spec, {.split = source_split});
  const data::Dataset target = data::open_dataset(cfg.target, {.split = cfg.target_split});
  if (cfg.label_oracle && !target.all_labelled())
    CBST_THROW("--label-oracle needs the target's true labels, and ", target.describe(), " has images without ",
               "label files; drop --label-oracle");
  std::optional<data::Dataset> eval_set;
  if (!cfg.eval.empty()) {
    auto [spec, split] = split_eval_spec(cfg.eval);
    eval_set = data::open_dataset(spec, {.split = split});
  }
  LoadedModel built = load_model(cfg.init, {.model = cfg.model, .num_classes = cfg.num_classes,
                                            .default_classes = default_num_classes(source),
                                            .allow_partial = cfg.allow_partial, .seed = cfg.train.seed});
  SegmentationModel& model = *built.model;
  const data::ClassSpace space = data::class_space_for(int(model.num_classes()));
  model.to(cfg.train.device);
  model.set_precision(cfg.train.precision);
  if (cfg.train.frozen_bn) model.set_frozen_batch_norm(true);
  prepare_data_parallel(model);
  if (cfg.adabn && batch_norm_layer_count(model) == 0)
    CBST_THROW("--adabn re-estimates batch-norm statistics, and ", model.name(), " has no batch-norm layer; ",
               "drop --adabn");
  Tensor prior;
  if (use_prior) prior = load_spatial_prior(cfg.prior).prior.to(cfg.train.device);

  run.log("cbst adapt: " + std::string(adapt_method_name(cfg.method)) + ", " + count_of(cfg.rounds, "round") +
          " on " + cfg.train.device.str() + precision_note(cfg.train.precision) +
          (regularizer != Regularizer::none
               ? ", regularizer " + std::string(regularizer_name(regularizer)) + " (weight " + json_text(Json(reg_weight)) + ")"
               : std::string()));
  run.log("  model  : " + built.description);
  run.log("  source : " + source.describe());
  run.log("  target : " + target.describe());
  if (eval_set) run.log("  eval   : " + eval_set->describe());
  if (!cfg.recipe_note.empty()) run.log("  recipe : " + cfg.recipe_note);

  // Round r's share of the source set; with the target set, the images it trains on.
  auto source_images = [&](int64_t r) {
    return std::max<size_t>(1, size_t(std::floor(cfg.source_portion.at(r - 1) * double(source.size()))));
  };
  const size_t target_images = adapt ? target.size() : 0;
  auto round_images = [&](int64_t r) { return int64_t(source_images(r) + target_images); };
  int64_t smallest = 1;
  for (int64_t r = 2; r <= cfg.rounds; ++r)
    if (round_images(r) < round_images(smallest)) smallest = r;
  require_full_batch(round_images(smallest), cfg.train,
                     "round " + std::to_string(smallest) + " (" + count_of(int64_t(source_images(smallest)), "source image") +
                         (adapt ? " and " + count_of(int64_t(target_images), "target image") : std::string()) + ")");

  RunEvaluation evaluation = run_evaluation(model, cfg.model, cfg.eval, cfg.eval_inference, cfg.train.device,
                                            built.input_convention, run);
  const EvaluateOptions& eval_options = evaluation.options;
  EvalSource& eval_source = evaluation.source;
  run.started();  // validated: from here on a failure keeps the folder (and its log)
  // Rounds count from 1; round 0 is the model the run starts from (run_dir.h).
  int64_t done_rounds = 0, global_step = 0;
  const std::string latest = run.file("checkpoints/latest");
  if (cfg.resume) {
    const std::string ckpt = run.file("checkpoints/" + first_line(read_text(latest)));
    const LoadedCheckpoint loaded = load_training_checkpoint(ckpt, model, nullptr);
    done_rounds = loaded.position.round;
    global_step = loaded.position.global_step;
    run.drop_metrics_from(done_rounds + 1);
    run.log("  resume : after round " + std::to_string(done_rounds) + " from " + ckpt);
  } else if (eval_set && run.writer()) {  // rank 0 evaluates; the others go on to round 1
    const data::EvalResult e = evaluate_in_run(model, *eval_set, eval_options, run, "round 0 (initial model) eval");
    EvalSource initial = eval_source;
    initial.checkpoint = cfg.init;
    initial.round = 0;
    run.write_text("eval/initial.json", json_text(eval_record(e, initial), 2) + "\n");
    run.metric({{"event", "initial_eval"}, {"round", 0}, {"miou", e.miou}, {"iou", eval_ious(e)}});
    run.log("round 0 (initial model): mIoU " + format_fixed(100 * e.miou, 2));
  }

  // AdaBN on the target training images. On several ranks every rank runs the whole set in
  // batches of --batch with its batch norm synchronised, so the statistics are those of one
  // process at --batch (not at the global batch; the unbiased variance counts each pixel once
  // per rank); the buffers are then rank 0's, so the replicas cannot drift apart.
  auto target_statistics = [&](const std::string& when) {
    const BatchNormStatisticsSummary s = recompute_batch_norm_statistics(
        model, target, {.batch = cfg.train.batch, .device = cfg.train.device, .input_convention = built.input_convention});
    broadcast_buffers(model);
    run.log(when + ": AdaBN, " + count_of(s.layers, "batch-norm layer") + " re-estimated on " +
            count_of(s.images, "target image"));
  };
  if (cfg.adabn && done_rounds == 0) target_statistics("before round 1");

  const std::vector<size_t> order = source_subset_order(source.size(), cfg.train.seed);
  // The run's steps, for its ETA: each step takes one global batch (--batch × ranks).
  const int64_t step_images = std::max<int64_t>(1, global_batch(cfg.train));
  int64_t total_steps = 0;
  for (int64_t r = 1; r <= cfg.rounds; ++r)
    total_steps += cfg.epochs_per_round * (round_images(r) / step_images);
  RunEta eta(total_steps, global_step, cfg.rounds, done_rounds);
  BestCheckpoint best(run, "round", "round");
  for (int64_t r = done_rounds + 1; r <= cfg.rounds; ++r) {
    // The schedules are indexed from 0: round 1 has portion P0 and the rate lr.
    const double portion = cfg.portion.at(r - 1), source_portion = cfg.source_portion.at(r - 1);
    const double lr = cfg.train.lr / std::pow(cfg.lr_decay, double(r - 1));
    const size_t n_source = source_images(r);
    std::vector<data::Dataset> parts{subset(source, order, n_source)};
    std::shared_ptr<const LrentTargets> soft_targets;
    Json round_info = {{"event", "round"}, {"round", r}, {"method", adapt_method_name(cfg.method)},
                       {"regularizer", regularizer_name(regularizer)}, {"reg_weight", reg_weight},
                       {"portion", portion}, {"source_portion", source_portion},
                       {"source_images", int64_t(n_source)}, {"lr", lr}};
    data::LoaderOptions lo = loader_options(cfg.train, space, built.input_convention,
                                            cfg.train.seed + uint64_t(r - 1) * 1000003u);
    if (adapt) {
      const ThresholdPolicy policy = (cfg.method == AdaptMethod::st || cfg.method == AdaptMethod::st_sp)
                                         ? ThresholdPolicy::st : ThresholdPolicy::cbst;
      const RoundLabels labels = generate_round_labels(
          model, target, prior,
          {.policy = policy, .portion = portion, .pool_stride = cfg.pool_stride, .sampling = pool_sampling,
           .lrent_alpha = regularizer == Regularizer::lrent ? reg_weight : 0.0, .inference = cfg.inference,
           .input_convention = built.input_convention, .device = cfg.train.device, .space = space,
           .previews = cfg.previews,
           .cache = prob_cache_from_name(cfg.prob_cache_memory, cfg.prob_cache_precision, cfg.train.device),
           .true_labels = cfg.label_oracle},
          run, r);
      std::vector<double> coverage, accuracy;
      int64_t labelled = 0, checked = 0, correct = 0;
      for (size_t c = 0; c < labels.labelled.size(); ++c) {
        coverage.push_back(double(labels.labelled[c]) / double(labels.pixels));
        accuracy.push_back(labels.checked[c] ? double(labels.correct[c]) / double(labels.checked[c]) : NAN);
        labelled += labels.labelled[c];
        checked += labels.checked[c];
        correct += labels.correct[c];
      }
      const std::vector<int> rare = rare_classes(labels.pool_sizes, cfg.mining);
      const Json thr = {{"round", r}, {"policy", threshold_policy_name(policy)}, {"portion", portion},
                        {"thresholds", labels.thresholds}, {"pool_sizes", labels.pool_sizes}, {"coverage", coverage},
                        {"accuracy", accuracy}, {"rare_classes", rare}, {"previews", labels.preview_stems}};
      run.write_text("rounds/" + std::to_string(r) + "/thresholds.json", json_text(thr) + "\n");
      round_info["pseudo_coverage"] = double(labelled) / double(labels.pixels);
      round_info["pseudo_accuracy"] = checked ? double(correct) / double(checked) : NAN;
      round_info["class_coverage"] = coverage;
      round_info["class_accuracy"] = accuracy;
      round_info["thresholds"] = labels.thresholds;
      run.log("round " + std::to_string(r) + "/" + std::to_string(cfg.rounds) + ": portion " + format_fixed(portion, 2) + ", pseudo-labels cover " +
              format_fixed(100.0 * double(labelled) / double(labels.pixels), 1) + "% of target pixels" +
              (checked ? ", " + format_fixed(100.0 * double(correct) / double(checked), 1) + "% correct" : "") +
              (cfg.label_oracle ? "; training on their true labels (--label-oracle)" : ""));
      parts.push_back(labels.dataset);
      soft_targets = labels.soft_targets;
      lo.crop_center = mining_crop_center(rare, int64_t(n_source), cfg.mining);
    }
    add_rare_class_sampling(lo, parts[0], space, cfg.train.rare_class_sampling, cfg.train.rare_class_draw);
    // Photometric jitter is for the labelled source only unless asked for the target too: the
    // pseudo-labelled target images are the domain the model is adapting to.
    lo.photometric_parts.assign(parts.size(), cfg.target_jitter);
    lo.photometric_parts[0] = true;
    const Tensor class_weights = class_weights_for(cfg.train.class_weights, parts, space, cfg.train.device);
    data::Loader loader(parts, lo);
    Sgd optimizer = make_optimizer(
        model, cfg.train, lr,
        cfg.round_schedule == "poly" ? std::max<int64_t>(1, cfg.epochs_per_round * loader.batches_per_epoch()) : 0);
    // CRST's losses (crst.h); the plain cross-entropy otherwise.
    std::function<Tensor(const Tensor&, const data::Batch&)> crst_loss;
    const int64_t target_offset = int64_t(n_source);
    if (regularizer == Regularizer::mrkld)
      crst_loss = [&, target_offset](const Tensor& logits, const data::Batch& batch) {
        std::vector<bool> regularized;
        for (int64_t index : batch.indices) regularized.push_back(index >= target_offset);
        return mrkld_loss(logits, batch.labels, regularized, reg_weight, class_weights);
      };
    else if (regularizer == Regularizer::lrent && soft_targets)
      crst_loss = [soft_targets, target_offset](const Tensor& logits, const data::Batch& batch) {
        return soft_cross_entropy(logits, soft_targets->build(batch, target_offset, logits.device()));
      };
    double loss = 0;
    const std::string previous = fs::exists(latest) ? first_line(read_text(latest)) : std::string();
    for (int64_t e = 1; e <= cfg.epochs_per_round; ++e) {
      const EpochStats s = train_epoch(model, optimizer, loader,
                                       {.round = r, .rounds = cfg.rounds, .epoch = e, .epochs = cfg.epochs_per_round,
                                        .loader_epoch = (r - 1) * cfg.epochs_per_round + (e - 1),
                                        .global_step = &global_step, .run = &run, .eta = &eta,
                                        .label = epoch_label(r, cfg.rounds, e, cfg.epochs_per_round),
                                        .log_every = cfg.train.log_every,
                                        .last_checkpoint = previous.empty() ? "" : run.file("checkpoints/" + previous),
                                        .class_weights = class_weights, .loss = crst_loss,
                                        .overlap_allreduce = cfg.train.overlap_allreduce});
      loss = s.mean_loss;
    }
    round_info["train_loss"] = loss;
    round_info["train_images"] = loader.size();
    if (cfg.adabn) target_statistics("round " + std::to_string(r) + "/" + std::to_string(cfg.rounds));
    round_info["adabn"] = cfg.adabn;
    round_info["target_jitter"] = cfg.target_jitter;
    if (cfg.label_oracle) round_info["label_oracle"] = true;
    // Rank 0 evaluates and writes; the other ranks go on to the next round's labelling.
    if (!run.writer()) {
      eta.unit_done();
      continue;
    }
    bool improved = false;
    double miou = 0;
    const std::string round_label = "round " + std::to_string(r) + "/" + std::to_string(cfg.rounds);
    if (eval_set) {
      const data::EvalResult ev = evaluate_in_run(model, *eval_set, eval_options, run, round_label + " eval");
      eval_source.round = r;
      run.write_text("eval/round_" + std::to_string(r) + ".json", json_text(eval_record(ev, eval_source), 2) + "\n");
      miou = ev.miou;
      improved = best.improves(miou);
      round_info["miou"] = ev.miou;
      round_info["iou"] = eval_ious(ev);
      round_info["classes"] = eval_names(ev);
      run.log(round_label + ": mIoU " + format_fixed(100 * ev.miou, 2) + "\n" + data::format_table(ev));
    }
    // The round's records, its checkpoint, best.safetensors, then `latest` (each atomic): a
    // kill before `latest` moves resumes this round, whose records resume drops and the
    // round rewrites; a kill after it finds them complete.
    run.metric(round_info);
    run.write_text("rounds/" + std::to_string(r) + "/summary.json", json_text(round_info) + "\n");
    const std::string name = "round_" + std::to_string(r) + ".safetensors";
    save_training_checkpoint(run.file("checkpoints/" + name), model, &optimizer,
                             {.round = r, .epoch = cfg.epochs_per_round, .global_step = global_step},
                             built.input_convention);
    if (improved) best.save(miou, r, run.file("checkpoints/" + name), run);
    run.write_text("checkpoints/latest", name + "\n");
    if (!cfg.keep_checkpoints && !previous.empty() && previous != name) fs::remove(run.file("checkpoints/" + previous));
    eta.unit_done();
    write_run_report(run.path());
  }
  if (!run.writer()) return;  // rank 0 writes the run's last files
  // summary.json: every round's record, in order, without times (a resumed run writes the
  // same file).
  Json rounds = Json::array();
  for (int64_t r = 1; r <= cfg.rounds; ++r) {
    const std::string path = run.file("rounds/" + std::to_string(r) + "/summary.json");
    Json round = Json::parse(read_text(path), nullptr, /*allow_exceptions=*/false);
    if (!round.is_object())
      CBST_THROW(path, " is missing or not a round record; the run folder is incomplete: resume it from an ",
                 "earlier round or start a new run");
    rounds.push_back(std::move(round));
  }
  Json initial;
  for (const Json& record : run.records("initial_eval")) initial = {{"round", 0}, {"miou", record.value("miou", Json())}};
  const Json final_miou = rounds.back().value("miou", Json());
  run.write_text("summary.json", json_text({{"command", "adapt"},
                                            {"model", cfg.model},
                                            {"classes", cfg.num_classes},
                                            {"method", adapt_method_name(cfg.method)},
                                            {"regularizer", regularizer_name(regularizer)},
                                            {"reg_weight", reg_weight},
                                            {"precision", precision_name(cfg.train.precision)},
                                            {"pool_sampling", pool_sampling_name(pool_sampling)},
                                            {"initial", initial},
                                            {"rounds", std::move(rounds)},
                                            {"best", best.json()},
                                            {"final", {{"round", cfg.rounds}, {"miou", final_miou},
                                                       {"checkpoint", "checkpoints/final.safetensors"}}}}) + "\n");
  const std::string final_weights = run.file("checkpoints/final.safetensors");
  write_final_weights(run.file("checkpoints/" + first_line(read_text(latest))), final_weights);
  write_final_eval(run, "eval/round_" + std::to_string(cfg.rounds) + ".json", final_weights);
  write_run_report(run.path());
  run.log("cbst adapt: done; final weights in " + final_weights +
          (best.json().is_null() ? std::string() : ", the best round's in " + run.file("checkpoints/best.safetensors")) +
          ", report in " + run.file("report.html"));
}

}  // namespace cbst
