#include "selftrain/supervised.h"

#include <filesystem>
#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>

#include "data/evaluation.h"
#include "data/image.h"
#include "engine/cuda_context.h"
#include "selftrain/checkpoint.h"
#include "selftrain/class_weights.h"
#include "selftrain/evaluate.h"
#include "selftrain/mining.h"
#include "selftrain/trainer.h"

namespace cbst {

namespace fs = std::filesystem;

void run_supervised(const SupervisedConfig& cfg) {
  RunDir run(cfg.run, cfg.resume);
  if (!cfg.resume) run.write_text("config.toml", cfg.config_text);
  // What does not change the training itself may change on resume.
  if (cfg.resume)
    run.check_resume(cfg.config_text, {"workers", "device", "log-every", "eval", "eval-every", "scales", "flip",
                                       "deterministic"});
  set_deterministic(cfg.train.deterministic);
  const data::ClassSpace space = data::class_space_for(int(cfg.num_classes));
  const data::Dataset dataset = data::open_dataset(cfg.data, {.split = cfg.split, .list_file = cfg.list});
  CBST_CHECK(dataset.all_labelled(), "supervised training needs labels, but ", dataset.describe(),
             " has images without ground truth");
  std::optional<data::Dataset> eval_set;
  if (!cfg.eval.empty()) {
    auto [spec, split] = split_eval_spec(cfg.eval);
    eval_set = data::open_dataset(spec, {.split = split});
  }
  BuiltModel built = build_model(cfg.model, cfg.num_classes, cfg.init, cfg.train.seed);
  SegmentationModel& model = *built.model;
  model.to(cfg.train.device);
  if (cfg.train.frozen_bn) model.set_frozen_batch_norm(true);
  prepare_data_parallel(model);

  data::LoaderOptions lo = loader_options(cfg.train, space, built.input_convention, cfg.train.seed);
  if (cfg.train.rare_class_sampling > 0)
    lo.crop_center = rare_class_crop_center(class_pixel_counts({dataset}, space), int64_t(dataset.size()),
                                            {.probability = cfg.train.rare_class_sampling});
  data::Loader loader(dataset, lo);
  Sgd optimizer = make_optimizer(model, cfg.train, cfg.train.lr,
                                 cfg.poly ? std::max<int64_t>(1, cfg.epochs * loader.batches_per_epoch()) : 0);
  const Tensor class_weights = class_weights_for(cfg.train.class_weights, {dataset}, space, cfg.train.device);
  run.log("cbst train: " + std::to_string(cfg.epochs) + " epochs on " + cfg.train.device.str());
  run.log("  model : " + built.description);
  run.log("  data  : " + dataset.describe());

  run.started();  // validated: from here on a failure keeps the folder (and its log)
  int64_t start_epoch = 0, global_step = 0;
  const std::string latest = run.file("checkpoints/latest");
  if (cfg.resume) {
    const LoadedCheckpoint c = load_training_checkpoint(run.file("checkpoints/last.safetensors"), model, &optimizer);
    start_epoch = c.position.epoch;
    global_step = c.position.global_step;
    run.drop_metrics_from_round(start_epoch);
    run.log("  resume: after epoch " + std::to_string(start_epoch));
  }
  EvaluateOptions eval_options{.protocol = data::protocol_from_name(std::to_string(cfg.num_classes)),
                               .inference = cfg.inference, .device = cfg.train.device,
                               .input_convention = built.input_convention};
  for (int64_t e = start_epoch; e < cfg.epochs; ++e) {
    const EpochStats s = train_epoch(model, optimizer, loader,
                                     {.round = e, .epoch = e, .global_step = &global_step, .run = &run,
                                      .label = "epoch " + std::to_string(e + 1) + "/" + std::to_string(cfg.epochs),
                                      .log_every = cfg.train.log_every,
                                      .last_checkpoint = fs::exists(latest) ? run.file("checkpoints/last.safetensors") : "",
                                      .class_weights = class_weights});
    Json info = {{"event", "epoch"}, {"epoch", e}, {"train_loss", s.mean_loss}, {"seconds", s.seconds}};
    const bool last = e + 1 == cfg.epochs;
    // Rank 0 evaluates and writes; the other ranks go on to the next epoch's first step.
    if (!run.writer()) continue;
    if (eval_set && (last || (cfg.eval_every > 0 && (e + 1) % cfg.eval_every == 0))) {
      const data::EvalResult ev = evaluate_model(model, *eval_set, eval_options);
      const std::string eval_json = json_text(data::to_json(ev), 2) + "\n";
      run.write_text("eval/epoch_" + std::to_string(e) + ".json", eval_json);
      info["miou"] = ev.miou;
      run.log("epoch " + std::to_string(e + 1) + ": mIoU " + format_fixed(100 * ev.miou, 2) +
              (last ? "\n" + data::format_table(ev) : ""));
      if (last) run.write_text("eval/final.json", eval_json);
    }
    // The epoch's record first, then the checkpoint: a kill in between resumes this epoch,
    // and resume drops the record before the epoch writes it again.
    run.metric(info, e);
    save_training_checkpoint(run.file("checkpoints/last.safetensors"), model, &optimizer,
                             {.round = -1, .epoch = e + 1, .global_step = global_step}, built.input_convention);
    run.write_text("checkpoints/latest", "last.safetensors\n");
  }
  if (run.writer())
    write_final_weights(run.file("checkpoints/last.safetensors"), run.file("checkpoints/final.safetensors"));
  run.log("cbst train: done; weights in " + run.file("checkpoints/final.safetensors"));
}

}  // namespace cbst
