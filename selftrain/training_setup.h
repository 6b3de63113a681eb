// Options and helpers shared by `cbst train` and `cbst adapt`.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "data/dataset.h"
#include "data/loader.h"
#include "layers/sgd.h"
#include "models/segmentation_model.h"
#include "selftrain/inference.h"

namespace cbst {

struct TrainingOptions {
  // Images per step *per process*: with N data-parallel ranks (mpirun -np N) a step sees a
  // global batch of batch·N images, the batches a single process with --batch batch·N sees.
  int64_t batch = 2;
  int64_t crop_height = 0;  // 0: no crop (whole scaled images; needs equal sizes per batch)
  int64_t crop_width = 0;
  double min_scale = 0.7;
  double max_scale = 1.3;
  bool flip = true;
  int64_t resize_long_side = 0;
  // Photometric jitter of the labelled source images (supervised training: the whole
  // dataset; self-training: the source part, and the pseudo-labelled target only with
  // AdaptConfig::target_jitter).
  data::ColorJitter color_jitter = {};
  data::GaussianBlur blur = {};  // likewise
  double lr = 0.01;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  double max_grad_norm = 0.0;
  // Linear warm-up of the learning rate over the first steps (factor 0.1 → 1), as mmseg.
  int64_t warmup_iters = 0;
  // "none": plain cross-entropy; "balanced": class weights from the training labels'
  // pixel frequencies (selftrain/class_weights.h).
  std::string class_weights = "none";
  // Rare-class sampling of labelled crops (selftrain/mining.h): the probability that a crop
  // is centred on a rare class, P(c) ∝ exp((1 − f_c)/0.01). 0: off.
  double rare_class_sampling = 0.0;
  // Which is drawn first: "image" (the loader's image, then one of the classes it holds) or
  // "class" (DAFormer's: a class over the whole set, then an image holding it).
  std::string rare_class_draw = "image";
  int64_t log_every = 20;  // steps between metrics.jsonl loss records
  int workers = 2;
  Device device = Device::cpu();
  uint64_t seed = 1;
  bool frozen_bn = false;
  bool deterministic = false;
  // bf16: mixed-precision convolutions (layers/module.h, Precision); the model's parameters,
  // batch norm, the loss, the optimizer and the checkpoints stay f32.
  Precision precision = Precision::f32;
  // Several ranks: overlap the gradient all-reduce with backward (the same gradients either
  // way; off can be faster where the ranks share cores, README "Training on several GPUs").
  bool overlap_allreduce = true;
};

// ", bf16 mixed precision" for the run's first log line; empty for f32.
std::string precision_note(Precision p);

// The class count a model for this data has unless told otherwise: 16 for SYNTHIA (the
// SYNTHIA → Cityscapes protocol), 19 for every other dataset.
int64_t default_num_classes(const data::Dataset& dataset);

// "KIND=PATH:SPLIT" (split defaults to `default_split`) → (spec, split).
std::pair<std::string, std::string> split_eval_spec(const std::string& spec,
                                                    const std::string& default_split = "val");

// Sharded across the ranks of dist::world() (each rank loads its slice of every global batch).
data::LoaderOptions loader_options(const TrainingOptions& o, data::ClassSpace space,
                                   const std::string& input_convention, uint64_t seed);
// The images one step trains on: --batch on each of dist::world()'s ranks.
int64_t global_batch(const TrainingOptions& o);
// Every epoch drops its last partial batch (as mmseg and a PyTorch DataLoader with
// drop_last=True), so a set of fewer images than one global batch (--batch × ranks) would
// train nothing at all; this throws a user's error naming `what` (e.g. "--data") instead.
void require_full_batch(int64_t images, const TrainingOptions& o, const std::string& what);
// Data-parallel training over dist::world() (engine/dist.h; nothing in a single process):
// batch norm synchronised across the ranks, dropout drawing the masks of this rank's slice of
// the global batch, and rank 0's parameters and buffers copied to every rank.
void prepare_data_parallel(SegmentationModel& model);
// Rank 0's buffers (batch-norm statistics) copied to every rank; nothing in a single process.
void broadcast_buffers(SegmentationModel& model);
// SGD over the model's parameter groups at base rate `lr`. poly_steps > 0: poly decay to 0
// over that many steps; either way the options' linear warm-up.
Sgd make_optimizer(const SegmentationModel& model, const TrainingOptions& o, double lr, int64_t poly_steps = 0);

// The label encoding our pseudo-label files use for a class space (trainIds of that space).
data::LabelEncoding class_id_encoding(data::ClassSpace space);

// An image as a normalised (1, 3, H, W) f32 tensor on `device`.
Tensor image_tensor(const data::Image& image, const std::string& input_convention, Device device);

}  // namespace cbst
