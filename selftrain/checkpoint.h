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

}  // namespace cbst
