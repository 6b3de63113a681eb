#include "selftrain/checkpoint.h"

#include "models/weight_import.h"
#include "weights/load_weights.h"

namespace cbst {

void save_training_checkpoint(const std::string& path, const SegmentationModel& model,
                              const Sgd* optimizer, const TrainingPosition& position,
                              const std::string& input_convention) {
  weights::TensorMap m = model_checkpoint(model, input_convention);
  if (optimizer)
    for (auto& [name, t] : optimizer->state()) m.set("optimizer." + name, t.detach().to(Device::cpu()));
  auto& model_mut = const_cast<SegmentationModel&>(model);
  m.metadata["round"] = std::to_string(position.round);
  m.metadata["epoch"] = std::to_string(position.epoch);
  m.metadata["global_step"] = std::to_string(position.global_step);
  m.metadata["dropout_seed"] = std::to_string(model_mut.dropout_generator().seed());
  m.metadata["dropout_offset"] = std::to_string(model_mut.dropout_generator().offset());
  weights::save_checkpoint(path, m);
}

void write_final_weights(const std::string& resumable, const std::string& final_path) {
  const weights::TensorMap m = weights::load_checkpoint(resumable);
  weights::TensorMap out;
  for (auto& [name, t] : m)
    if (name.rfind("optimizer.", 0) != 0) out.insert(name, t);
  for (const char* key : {"model", "num_classes", "input_convention"}) {
    auto it = m.metadata.find(key);
    if (it != m.metadata.end()) out.metadata[key] = it->second;
  }
  weights::save_checkpoint(final_path, out);
}

static int64_t meta_int(const weights::TensorMap& m, const std::string& key, int64_t fallback) {
  return m.metadata_int(key, fallback);
}

LoadedCheckpoint load_training_checkpoint(const std::string& path, SegmentationModel& model,
                                          Sgd* optimizer) {
  const weights::TensorMap m = weights::load_checkpoint(path);
  auto it = m.metadata.find("model");
  CBST_CHECK(it != m.metadata.end() && it->second == model.name(), path, " is not a ", model.name(),
             " checkpoint");
  std::map<std::string, Tensor> state, opt;
  for (auto& [n, t] : m) {
    if (n.rfind("optimizer.", 0) == 0) opt[n.substr(10)] = t;
    else state[n] = t;
  }
  model.load_state_dict(state, true);
  if (optimizer && !opt.empty()) optimizer->load_state(opt);
  if (m.metadata.count("dropout_seed"))
    model.dropout_generator().set_state(m.metadata_u64("dropout_seed", 0), m.metadata_u64("dropout_offset", 0));
  LoadedCheckpoint r;
  r.position = {meta_int(m, "round", 0), meta_int(m, "epoch", 0), meta_int(m, "global_step", 0)};
  auto conv = m.metadata.find("input_convention");
  r.input_convention = conv == m.metadata.end() ? model.input_convention() : conv->second;
  return r;
}

}  // namespace cbst
