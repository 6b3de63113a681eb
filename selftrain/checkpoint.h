// Training checkpoints: the model's weights and buffers, the optimizer's state (under
// "optimizer."), the dropout generator's state and the position in the run (round, epoch,
// global step) — everything a resumed run needs to continue exactly where the last one
// stopped. One safetensors file, written atomically; `checkpoints/latest` names the newest.
#pragma once

#include <memory>
#include <string>

#include "layers/sgd.h"
#include "models/segmentation_model.h"

namespace cbst {

struct TrainingPosition {
  int64_t round = 0;        // rounds finished, the number of the last one (adapt); 0 for `train`
  int64_t epoch = 0;        // epochs finished (in the round, or in the run)
  int64_t global_step = 0;  // optimizer steps so far
};

void save_training_checkpoint(const std::string& path, const SegmentationModel& model,
                              const Sgd* optimizer, const TrainingPosition& position,
                              const std::string& input_convention);

// The final weights of a run from its last resumable checkpoint: the model's tensors and what
// names them (model, classes, input convention), without the optimizer's state or the
// training position, which only --resume needs.
void write_final_weights(const std::string& resumable, const std::string& final_path);

struct LoadedCheckpoint {
  TrainingPosition position;
  std::string input_convention;
};
// Loads weights (strict), the dropout generator and, when given, the optimizer's state.
LoadedCheckpoint load_training_checkpoint(const std::string& path, SegmentationModel& model,
                                          Sgd* optimizer);

// A model for a run: `init` empty → random initialisation (seeded); a cbst checkpoint → its
// weights (the model name and classes must agree); any other weight file → imported with
// the mappings of models/weight_import.h. Returns the input convention to use.
struct BuiltModel {
  std::shared_ptr<SegmentationModel> model;
  std::string input_convention;
  std::string description;  // one line for the log
};
BuiltModel build_model(const std::string& name, int64_t num_classes, const std::string& init,
                       uint64_t seed);

}  // namespace cbst
