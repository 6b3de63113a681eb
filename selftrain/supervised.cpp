#include "selftrain/supervised.h"

#include <filesystem>
#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>

#include "data/evaluation.h"
#include "data/image.h"
#include "engine/cuda_context.h"
#include "engine/format.h"
#include "models/weight_import.h"
#include "selftrain/checkpoint.h"
#include "selftrain/class_weights.h"
#include "selftrain/evaluate.h"
#include "selftrain/mining.h"
#include "selftrain/run_records.h"
#include "selftrain/run_report.h"
#include "selftrain/trainer.h"

namespace cbst {

namespace fs = std::filesystem;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

void run_supervised(const SupervisedConfig& cfg) {
  RunDir run(cfg.run, cfg.resume);
  if (!cfg.resume) run.write_text("config.toml", cfg.config_text);
  // What does not change the training itself may change on resume.
  if (cfg.resume)
    run.check_resume(cfg.config_text, {"workers", "device", "log-every", "eval", "eval-every", "scales", "flip",
                                       "deterministic", "keep-checkpoints", "no-overlap-allreduce"});
  set_deterministic(cfg.train.deterministic);
  const data::Dataset dataset = data::open_dataset(cfg.data, {.split = cfg.split, .list_file = cfg.list});
  CBST_CHECK(dataset.all_labelled(), "supervised training needs labels, but ", dataset.describe(),
             " has images without ground truth");
  std::optional<data::Dataset> eval_set;
  if (!cfg.eval.empty()) {
    auto [spec, split] = split_eval_spec(cfg.eval);
    eval_set = data::open_dataset(spec, {.split = split});
  }
  LoadedModel built = load_model(cfg.init, {.model = cfg.model, .num_classes = cfg.num_classes,
                                            .default_classes = default_num_classes(dataset),
                                            .allow_partial = cfg.allow_partial, .seed = cfg.train.seed});
  SegmentationModel& model = *built.model;
  const data::ClassSpace space = data::class_space_for(int(model.num_classes()));
  model.to(cfg.train.device);
  model.set_precision(cfg.train.precision);
  if (cfg.train.frozen_bn) model.set_frozen_batch_norm(true);
  prepare_data_parallel(model);

  data::LoaderOptions lo = loader_options(cfg.train, space, built.input_convention, cfg.train.seed);
  add_rare_class_sampling(lo, dataset, space, cfg.train.rare_class_sampling, cfg.train.rare_class_draw);
  require_full_batch(int64_t(dataset.size()), cfg.train, "--data");
  data::Loader loader(dataset, lo);
  Sgd optimizer = make_optimizer(model, cfg.train, cfg.train.lr,
                                 cfg.poly ? std::max<int64_t>(1, cfg.epochs * loader.batches_per_epoch()) : 0);
  const Tensor class_weights = class_weights_for(cfg.train.class_weights, {dataset}, space, cfg.train.device);
  run.log("cbst train: " + count_of(cfg.epochs, "epoch") + " on " + cfg.train.device.str() +
          precision_note(cfg.train.precision));
  run.log("  model : " + built.description);
  run.log("  data  : " + dataset.describe());
  if (!cfg.recipe_note.empty()) run.log("  recipe: " + cfg.recipe_note);

  run.started();  // validated: from here on a failure keeps the folder (and its log)
  int64_t done_epochs = 0, global_step = 0;
  const std::string latest = run.file("checkpoints/latest");
  if (cfg.resume) {
    const std::string resumable = run.file("checkpoints/" + first_line(read_text(latest)));
    const LoadedCheckpoint c = load_training_checkpoint(resumable, model, &optimizer);
    done_epochs = c.position.epoch;
    global_step = c.position.global_step;
    run.drop_metrics_from(done_epochs + 1);
    run.log("  resume: after epoch " + std::to_string(done_epochs) + " from " + resumable);
  }
  RunEvaluation evaluation = run_evaluation(model, cfg.model, cfg.eval, cfg.inference, cfg.train.device,
                                            built.input_convention, run);
  const EvaluateOptions& eval_options = evaluation.options;
  EvalSource& eval_source = evaluation.source;
  BestCheckpoint best(run, "epoch", "epoch");
  RunEta eta(cfg.epochs * loader.batches_per_epoch(), global_step, cfg.epochs, done_epochs);
  for (int64_t e = done_epochs + 1; e <= cfg.epochs; ++e) {
    const std::string label = epoch_label(0, 0, e, cfg.epochs);
    const std::string previous = fs::exists(latest) ? first_line(read_text(latest)) : std::string();
    const EpochStats s = train_epoch(model, optimizer, loader,
                                     {.epoch = e, .epochs = cfg.epochs, .loader_epoch = e - 1,
                                      .global_step = &global_step, .run = &run, .eta = &eta, .label = label,
                                      .log_every = cfg.train.log_every,
                                      .last_checkpoint = previous.empty() ? "" : run.file("checkpoints/" + previous),
                                      .class_weights = class_weights,
                                      .overlap_allreduce = cfg.train.overlap_allreduce});
    Json info = {{"event", "epoch"}, {"epoch", e}, {"train_loss", s.mean_loss}, {"seconds", s.seconds}};
    // Rank 0 evaluates and writes; the other ranks go on to the next epoch's first step.
    if (!run.writer()) {
      eta.unit_done();
      continue;
    }
    const bool last = e == cfg.epochs;
    bool improved = false;
    double miou = 0;
    if (eval_set && (last || (cfg.eval_every > 0 && e % cfg.eval_every == 0))) {
      const data::EvalResult ev = evaluate_in_run(model, *eval_set, eval_options, run, label + " eval");
      eval_source.epoch = e;
      run.write_text("eval/epoch_" + std::to_string(e) + ".json", json_text(eval_record(ev, eval_source), 2) + "\n");
      miou = ev.miou;
      info["miou"] = miou;
      improved = best.improves(miou);
      run.log(label + ": mIoU " + format_fixed(100 * miou, 2) + (last ? "\n" + data::format_table(ev) : ""));
    }
    // The epoch's record, its checkpoint, best.safetensors, then `latest` (each atomic): a
    // kill before `latest` moves resumes this epoch, whose record resume drops and the epoch
    // writes again; a kill after it finds them complete.
    run.metric(info);
    const std::string name = "epoch_" + std::to_string(e) + ".safetensors";
    save_training_checkpoint(run.file("checkpoints/" + name), model, &optimizer,
                             {.round = 0, .epoch = e, .global_step = global_step}, built.input_convention);
    if (improved) best.save(miou, e, run.file("checkpoints/" + name), run);
    run.write_text("checkpoints/latest", name + "\n");
    if (!cfg.keep_checkpoints && !previous.empty() && previous != name) fs::remove(run.file("checkpoints/" + previous));
    eta.unit_done();
    write_run_report(run.path());
  }
  if (!run.writer()) return;  // rank 0 writes the run's last files
  const std::string final_weights = run.file("checkpoints/final.safetensors");
  write_final_weights(run.file("checkpoints/" + first_line(read_text(latest))), final_weights);
  write_final_eval(run, "eval/epoch_" + std::to_string(cfg.epochs) + ".json", final_weights);
  // summary.json: what the run did, without times (a resumed run writes the same file).
  Json epochs = Json::array();
  Json final_miou;
  for (const Json& r : run.records("epoch")) {
    Json epoch = {{"epoch", r.value("epoch", int64_t(0))}, {"train_loss", r.value("train_loss", Json())}};
    if (r.contains("miou")) epoch["miou"] = r["miou"];
    final_miou = r.value("miou", Json());
    epochs.push_back(std::move(epoch));
  }
  run.write_text("summary.json",
                 json_text({{"command", "train"}, {"model", cfg.model}, {"classes", cfg.num_classes},
                            {"data", cfg.data}, {"eval", cfg.eval.empty() ? Json() : Json(cfg.eval)},
                            {"precision", precision_name(cfg.train.precision)},
                            {"epochs", std::move(epochs)}, {"best", best.json()},
                            {"final", {{"epoch", cfg.epochs}, {"miou", final_miou},
                                       {"checkpoint", "checkpoints/final.safetensors"}}}},
                           2) + "\n");
  write_run_report(run.path());
  run.log("cbst train: done; weights in " + final_weights +
          (best.json().is_null() ? std::string() : ", the best epoch's in " + run.file("checkpoints/best.safetensors")) +
          ", report in " + run.file("report.html"));
}

}  // namespace cbst
