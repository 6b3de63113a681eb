// Self-training rounds (DESIGN §7.6, the authors' solve_ST): for r = 1 … R (round 0 is the
// model the run starts from, evaluated first),
//   1. pseudo-label the target set with the current weights (ST: one global pool; CBST: one
//      pool per class; *-SP: scores multiplied by the spatial prior), portion p_r;
//   2. train `epochs_per_round` epochs on the shuffled mix of a source subset (portion s_r
//      of a fixed permutation, so each subset contains the previous) and all pseudo-labelled
//      target images, mining rare-class crops on the target;
//   3. evaluate, checkpoint, and record the round.
// With `adabn`, the batch-norm statistics are re-estimated on the target set (AdaBN,
// selftrain/batch_norm_statistics.h) before round 1's pseudo-labels and after every round's
// training, so each labelling and each evaluation sees the target's statistics rather than
// the running mix of the source and target batches the round trained on.
// p_r = min(p0 + (r−1)·Δp, p_max) and likewise s_r; the learning rate is lr / decay^(r−1)
// (decay √2 by default), constant within a round (or poly-decayed, round_schedule); training continues from the previous
// round's weights. `source-only` trains on the source subsets only: the no-adaptation
// control with the same schedule. `resume` continues after the last finished round and
// ends with the same numbers as an uninterrupted run (same seed, device, thread count).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "selftrain/mining.h"
#include "selftrain/training_setup.h"

namespace cbst {

enum class AdaptMethod { source_only, st, cbst, st_sp, cbst_sp };
AdaptMethod adapt_method_from_name(const std::string& name);  // "source-only", "st", "cbst", "st-sp", "cbst-sp"
const char* adapt_method_name(AdaptMethod m);

struct PortionSchedule {
  double start = 0.2, step = 0.05, max = 0.5;
  double at(int64_t round) const;
  static PortionSchedule parse(const std::string& text);  // "P0,STEP,MAX"
  std::string str() const;                                 // "P0,STEP,MAX", as parse reads it
};

struct AdaptConfig {
  std::string source;  // KIND=PATH
  std::string target;  // KIND=PATH
  std::string target_split = "train";
  std::string eval;    // KIND=PATH[:SPLIT]; empty: no evaluation
  std::string model = "small-fcn";
  // 0: the classifier's in `init`, else default_num_classes of the (source) data.
  int64_t num_classes = 0;
  std::string init;    // checkpoint or external weights
  bool allow_partial = false;  // `init` may leave trained layers at their initialisation
  AdaptMethod method = AdaptMethod::cbst;
  std::string prior;   // safetensors from `cbst priors` (st-sp, cbst-sp)
  int64_t rounds = 3;
  PortionSchedule portion = {0.2, 0.05, 0.5};
  PortionSchedule source_portion = {1.0, 0.0, 1.0};
  int64_t epochs_per_round = 2;
  double lr_decay = 1.4142135623730951;
  // Within a round: "constant" (the authors' code) or "poly" (decayed to 0 by the round's
  // end, so that the model that labels the next round and is evaluated is a settled one,
  // not a snapshot of SGD's noise at a constant rate).
  std::string round_schedule = "constant";
  int64_t pool_stride = 1;
  std::string pool_sampling = "pixel-index";  // or "authors" (selftrain/pseudo_labels.h)
  // CRST (selftrain/crst.h): "none", "mrkld" or "lrent", with its weight (MRKLD's W, LRENT's
  // α); a negative weight means the regulariser's default (0.01, 0.25).
  std::string regularizer = "none";
  double reg_weight = -1.0;
  MiningOptions mining = {};
  TrainingOptions train = {};
  // The pseudo-labels' test scales and flip (`--scales`, `--flip`), and the rounds'
  // evaluations' (`--eval-scales`, `--eval-flip`): one scale and no flip unless asked, so a
  // round's mIoU is what `cbst eval` gives its checkpoint with its defaults.
  InferenceOptions inference = {};
  InferenceOptions eval_inference = {};
  std::string prob_cache_memory = "host";   // host or device
  std::string prob_cache_precision = "f32"; // f32 or f16
  std::string run;
  bool resume = false;
  bool keep_checkpoints = false;
  bool adabn = false;  // re-estimate batch-norm statistics on the target before each labelling (above)
  // Photometric augmentation (train.color_jitter, train.blur) of the pseudo-labelled target
  // images as well as the source's: the student sees jittered target crops while the
  // pseudo-labels come from the plain images (the strong augmentation of DACS and DAFormer).
  bool target_jitter = false;
  // A diagnostic (RoundLabelOptions::true_labels): the pixels each round's rule labels take
  // the target's true labels, to tell what the rule's choice of pixels is worth from what its
  // wrong labels cost. Needs a labelled target.
  bool label_oracle = false;
  int64_t previews = 4;
  std::string config_text;  // the effective options, written to config.toml
  std::string recipe_note;  // the model recipe's options the command line left out (tools/cli/recipe.h), logged
};

void run_adaptation(const AdaptConfig& config);

// The fixed permutation of the source set whose prefixes are the per-round subsets (so each
// round's subset contains the previous one's), a function of (n, seed) only.
std::vector<size_t> source_subset_order(size_t n, uint64_t seed);

}  // namespace cbst
