// What `cbst train` and `cbst adapt` share at the end of an epoch or round and of the run:
// evaluation with progress, each evaluation's JSON, best.safetensors, eval/final.json.
// Epochs and rounds count from 1 (run_dir.h).
#pragma once

#include <cstdint>
#include <string>

#include "data/dataset.h"
#include "data/evaluation.h"
#include "models/segmentation_model.h"
#include "selftrain/eval_record.h"
#include "selftrain/evaluate.h"
#include "selftrain/run_dir.h"

namespace cbst {

// How a run evaluates on its --eval set (`eval_spec`, KIND=PATH[:SPLIT]; empty: no --eval):
// the options (protocol from the class count, the run's test scales, flip and device) and
// what its eval/*.json record as evaluated (`source`, whose round or epoch the caller sets).
struct RunEvaluation {
  EvaluateOptions options;
  EvalSource source;
};
RunEvaluation run_evaluation(const SegmentationModel& model, const std::string& model_name,
                             const std::string& eval_spec, const InferenceOptions& inference, Device device,
                             const std::string& input_convention, const RunDir& run);

// evaluate_model with a progress bar (plain lines off a terminal) and a line in the run's
// log when it is done; `label` names it ("epoch 3/10 eval").
data::EvalResult evaluate_in_run(SegmentationModel& model, const data::Dataset& dataset, EvaluateOptions options,
                                 RunDir& run, const std::string& label);

// best.safetensors as mmseg's save_best: the weights of the evaluation with the highest val
// mIoU so far. `unit` is "epoch" or "round": the records of `event` in metrics.jsonl that
// carry a "miou" are the evaluations so far (so a resumed run knows its best).
class BestCheckpoint {
 public:
  BestCheckpoint(const RunDir& run, const std::string& event, const std::string& unit);
  // Strictly higher than every evaluation before (the first of equal ones stays best).
  bool improves(double miou) const { return index_ == 0 || miou > miou_; }
  // Writes checkpoints/best.safetensors (weights only, atomically) from the epoch's or
  // round's resumable checkpoint and logs it.
  void save(double miou, int64_t index, const std::string& resumable, RunDir& run);
  // {"<unit>": n, "miou": m, "checkpoint": "checkpoints/best.safetensors"}, or null when
  // there was no evaluation.
  Json json() const;

 private:
  std::string unit_;
  int64_t index_ = 0;  // 0: none yet
  double miou_ = 0;
};

// eval/final.json: the last evaluation's record (eval/<last>.json) naming the run's final
// weights file (with its size, time and CRC-32), which holds those same weights. Nothing
// when the run had no evaluation.
void write_final_eval(RunDir& run, const std::string& last_eval, const std::string& final_weights);

}  // namespace cbst
