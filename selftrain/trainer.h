// The training loop shared by `cbst train` (supervised: source-only models and oracles) and
// each self-training round: SGD on softmax cross-entropy (mean over non-ignored pixels) over
// a loader's batches, with a NaN/Inf guard that stops the run naming the step. Every
// `log_every` steps (and at the epoch's end) one log line and one metrics.jsonl record: the
// loss over those steps, learning rate, data and step time, memory, the run's ETA.
//
// Data-parallel (dist::world() of several ranks, each with its slice of every global batch):
// the step must be the single-process step on the global batch, whose loss is Σ_p w_p ℓ_p /
// Σ_p w_p over all ranks' pixels, not the mean of the ranks' means (their normalisers W_r, the
// weighted non-ignored pixel counts, differ). So each rank backpropagates its loss scaled by
// W_r / Σ_r W_r (one all-reduce of two numbers, which also gives every rank the global loss
// for the NaN guard and the logs), then the gradients are summed across ranks in buckets
// (dist::GradientBuckets) before the optimizer step; every rank then takes the same step.
// A bucket's all-reduce starts during backward as soon as its gradients are final, unless
// `overlap_allreduce` is off (then all of them after backward; the same sums, bit for bit).
// CRST's losses are weighted by the same W_r: exact for LRENT
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
  // Where the epoch is, for logs and metrics, counted from 1 (run_dir.h): round 0 is
  // supervised training (its records carry no round); the epoch is within the round.
  int64_t round = 0;
  int64_t rounds = 0;
  int64_t epoch = 1;
  int64_t epochs = 1;
  int64_t loader_epoch = 0;    // the loader's epoch index (drives its random draws)
  int64_t* global_step = nullptr;
  RunDir* run = nullptr;
  RunEta* eta = nullptr;       // the whole run's ETA, for the progress bar and log lines
  std::string label = "train";
  int64_t log_every = 20;      // steps between log lines and metrics records
  std::string last_checkpoint; // named in the NaN error
  Tensor class_weights;        // (C) cross-entropy weights; undefined: plain cross-entropy
  // Replaces the cross-entropy when set (CRST's regularised losses, selftrain/crst.h).
  std::function<Tensor(const Tensor& logits, const data::Batch& batch)> loss = {};
  // Several ranks: start the gradient buckets' all-reduces during backward (engine/dist.h).
  bool overlap_allreduce = true;
};

// "epoch 3/30" or "round 2/3 epoch 1/2": how logs and progress bars name an epoch.
std::string epoch_label(int64_t round, int64_t rounds, int64_t epoch, int64_t epochs);

struct EpochStats {
  double mean_loss = 0;
  int64_t steps = 0;
  double seconds = 0;
};

EpochStats train_epoch(SegmentationModel& model, Sgd& optimizer, data::Loader& loader,
                       const EpochContext& context);

}  // namespace cbst
