#include "selftrain/run_records.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/check.h"
#include "selftrain/checkpoint.h"
#include "selftrain/training_setup.h"

namespace cbst {

namespace fs = std::filesystem;

RunEvaluation run_evaluation(const SegmentationModel& model, const std::string& model_name,
                             const std::string& eval_spec, const InferenceOptions& inference, Device device,
                             const std::string& input_convention, const RunDir& run) {
  RunEvaluation e{.options = {.protocol = data::protocol_from_name(std::to_string(model.num_classes())),
                              .inference = inference, .device = device, .input_convention = input_convention},
                  .source = {}};
  if (!eval_spec.empty()) {
    const auto [spec, split] = split_eval_spec(eval_spec);
    e.source = {.model = model_name, .run = run.path(), .data = spec, .split = split, .scales = inference.scales,
                .flip = inference.flip, .input_convention = input_convention,
                .precision = precision_name(model.precision())};
  }
  return e;
}

data::EvalResult evaluate_in_run(SegmentationModel& model, const data::Dataset& dataset, EvaluateOptions options,
                                 RunDir& run, const std::string& label) {
  Progress progress(label, int64_t(dataset.size()), &run);
  options.progress = [&](int64_t done, int64_t total) {
    (void)total;
    progress.update(done);
  };
  const data::EvalResult result = evaluate_model(model, dataset, options);
  progress.finish("mIoU " + format_fixed(100 * result.miou, 2));
  return result;
}

BestCheckpoint::BestCheckpoint(const RunDir& run, const std::string& event, const std::string& unit) : unit_(unit) {
  for (const Json& r : run.records(event)) {
    const auto miou = r.find("miou"), index = r.find(unit);
    if (miou == r.end() || !miou->is_number() || index == r.end() || !index->is_number_integer()) continue;
    if (improves(miou->get<double>())) {
      miou_ = miou->get<double>();
      index_ = index->get<int64_t>();
    }
  }
}

void BestCheckpoint::save(double miou, int64_t index, const std::string& resumable, RunDir& run) {
  write_final_weights(resumable, run.file("checkpoints/best.safetensors"));
  miou_ = miou;
  index_ = index;
  run.log("best so far: mIoU " + format_fixed(100 * miou, 2) + " after " + unit_ + " " + std::to_string(index) +
          ", weights in " + run.file("checkpoints/best.safetensors"));
}

Json BestCheckpoint::json() const {
  if (index_ == 0) return Json();
  return {{unit_, index_}, {"miou", miou_}, {"checkpoint", "checkpoints/best.safetensors"}};
}

void write_final_eval(RunDir& run, const std::string& last_eval, const std::string& final_weights) {
  const std::string path = run.file(last_eval);
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  Json record = Json::parse(std::string(std::istreambuf_iterator<char>(in), {}), nullptr, /*allow_exceptions=*/false);
  CBST_CHECK(record.is_object(), path, " is not an evaluation record; the run folder is damaged: start a new run");
  record["checkpoint"] = file_identity(final_weights);
  run.write_text("eval/final.json", json_text(record, 2) + "\n");
}

}  // namespace cbst
