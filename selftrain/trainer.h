// The training loop shared by `cbst train` (supervised: source-only models and oracles) and
// each self-training round: SGD on softmax cross-entropy (mean over non-ignored pixels) over
// a loader's batches, with a NaN/Inf guard that stops the run naming the step.
//
// Data-parallel (dist::world() of several ranks, each with its slice of every global batch):
// the step must be the single-process step on the global batch, whose loss is Σ_p w_p ℓ_p /
// Σ_p w_p over all ranks' pixels, not the mean of the ranks' means (their normalisers W_r, the
// weighted non-ignored pixel counts, differ). So each rank backpropagates its loss scaled by
// W_r / Σ_r W_r (one all-reduce of two numbers, which also gives every rank the global loss
// for the NaN guard and the logs), then the gradients are summed across ranks in buckets
// (dist::GradientBuckets) before the optimizer step; every rank then takes the same step.
// The all-reduce follows backward (no overlap: the tape has no per-parameter hooks, and CPU
// ranks are compute-bound). CRST's losses are weighted by the same W_r: exact for LRENT
// (normalised by the pixels with a target), approximate for MRKLD's second term (normalised
// by the regularised target pixels).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "data/loader.h"
#include "layers/sgd.h"
#include "models/segmentation_model.h"
#include "selftrain/run_dir.h"

namespace cbst {

struct EpochContext {
  int64_t round = -1;          // for logs and metrics (-1: supervised)
  int64_t epoch = 0;           // the loader's epoch number (drives its random draws)
  int64_t* global_step = nullptr;
  RunDir* run = nullptr;
  std::string label = "train";
  int64_t log_every = 20;      // steps between metric lines
  std::string last_checkpoint; // named in the NaN error
  Tensor class_weights;        // (C) cross-entropy weights; undefined: plain cross-entropy
  // Replaces the cross-entropy when set (CRST's regularised losses, selftrain/crst.h).
  std::function<Tensor(const Tensor& logits, const data::Batch& batch)> loss = {};
};

struct EpochStats {
  double mean_loss = 0;
  int64_t steps = 0;
  double seconds = 0;
};

EpochStats train_epoch(SegmentationModel& model, Sgd& optimizer, data::Loader& loader,
                       const EpochContext& context);

}  // namespace cbst
