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

BuiltModel build_model(const std::string& name, int64_t num_classes, const std::string& init,
                       uint64_t seed) {
  BuiltModel b;
  if (init.empty()) {
    b.model = create_model(name, {.num_classes = num_classes, .seed = seed});
    b.input_convention = b.model->input_convention();
    b.description = name + ", " + std::to_string(num_classes) + " classes, random initialisation (seed " +
                    std::to_string(seed) + ")";
    return b;
  }
  const weights::TensorMap m = weights::load_weights(init);
  m.check_finite();
  if (m.metadata.count("model") && m.metadata.count("num_classes")) {
    CBST_CHECK(m.metadata.at("model") == name, init, " holds a ", m.metadata.at("model"),
               " checkpoint but --model is ", name);
    CBST_CHECK(m.metadata_int("num_classes", 0) == num_classes, init, " was trained for ",
               m.metadata.at("num_classes"), " classes but ", num_classes, " are asked for");
    b.model = create_model(name, {.num_classes = num_classes, .seed = seed, .initialize = false});
    std::map<std::string, Tensor> state;
    for (auto& [n, t] : m)
      if (n.rfind("optimizer.", 0) != 0) state[n] = t;
    b.model->load_state_dict(state, true);
    if (m.metadata.count("dropout_seed"))
      b.model->dropout_generator().set_state(std::stoull(m.metadata.at("dropout_seed")), 0);
    b.input_convention = m.metadata.count("input_convention") ? m.metadata.at("input_convention")
                                                               : b.model->input_convention();
    b.description = name + " from checkpoint " + init;
    return b;
  }
  b.model = create_model(name, {.num_classes = num_classes, .seed = seed});
  const WeightImport r = import_weights(m, *b.model);
  b.input_convention = r.input_convention;
  b.description = name + " from " + init + " (" + r.layout + ", " + std::to_string(r.tensors.size()) +
                  " tensors; " + std::to_string(r.not_covered.size()) + " keep their initialisation; input " +
                  r.input_convention + ")";
  for (const std::string& note : r.notes) b.description += "; " + note;
  return b;
}

}  // namespace cbst
