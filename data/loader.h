// A threaded prefetching loader: worker threads decode and augment batches ahead of the
// consumer, which receives them in a fixed order as engine tensors on the requested device.
//
// Determinism: the epoch's sample order depends on (seed, epoch) and each sample's
// augmentation on (seed, epoch, dataset index), never on which thread ran it or when, so 1,
// 2 or 8 workers give bit-identical batches.
//
//   Loader loader(dataset, {.batch_size = 2, .workers = 2, .seed = 7});
//   loader.start_epoch(0);
//   while (auto batch = loader.next()) { ... batch->images, batch->labels ... }
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "data/dataset.h"
#include "data/sample_rng.h"
#include "data/transforms.h"
#include "engine/tensor.h"

namespace cbst::data {

// Class-first rare-class sampling, DAFormer's RCS (Hoyer et al., CVPR 2022): with
// probability `probability` each slot of an epoch whose scheduled sample lies below
// `end_index` is replaced by a draw of its own: a class c with probability ∝ class_weight[c],
// then one of images_with_class[c] uniformly, and its crop is centred on a random pixel of c
// (where the loader crops). A replaced slot's augmentation is keyed by the slot rather than
// the image, so an image drawn twice in an epoch is augmented twice; every other slot keeps
// the draws it has without this. Classes with weight 0 or no image are never drawn.
struct ClassFirstSampling {
  double probability = 0.0;  // 0: off
  int64_t end_index = 0;
  std::vector<double> class_weight;                  // per class id
  std::vector<std::vector<int64_t>> images_with_class;  // per class id: indices below end_index
};

struct LoaderOptions {
  int batch_size = 1;
  int workers = 2;            // 0: decode on the consumer's thread
  int prefetch_batches = 4;   // how far workers may run ahead of the consumer
  bool shuffle = true;
  bool drop_last = true;      // drop an incomplete final batch
  // Data-parallel training (one loader per rank): this loader yields slice `shard_index` of
  // `shard_count` of every global batch of batch_size·shard_count samples, so the ranks
  // together see exactly the batches (order and augmentation) of one loader with that batch
  // size. Needs drop_last when shard_count > 1 (every rank gets a full slice).
  int shard_index = 0;
  int shard_count = 1;
  // false: no scale/crop/flip (evaluation); the images of a batch must match in size. With
  // augmentation, samples of unequal size (random scale without a crop) are padded at the
  // bottom and right to the batch's largest: image 0 after normalisation, label 255.
  bool augment = true;
  uint64_t seed = 0;
  ClassSpace classes = ClassSpace::cityscapes19;  // the label space of the batches
  AugmentParams augment_params = {};
  // Photometric augmentation (only with augment): colour jitter, then Gaussian blur, drawn
  // from a stream of their own so that turning them on leaves every other random choice as
  // it was. Applied to the parts whose entry in `photometric_parts` is true (empty: every
  // part), e.g. only the source part of a self-training round.
  ColorJitter color_jitter = {};
  GaussianBlur blur = {};
  std::vector<bool> photometric_parts = {};
  Normalization normalization = {};
  Device device = Device::cpu();
  // Optional crop placement (hard-sample mining, DESIGN §7.8): given a sample's labels (in
  // the file's resolution) and a random stream of its own, returns true and a centre (cx, cy)
  // in the file's pixel coordinates to centre the crop there (shifted to lie inside the
  // scaled image), or false to keep the uniform crop. Called on worker threads; must be
  // thread-safe and depend only on its arguments, so batches stay deterministic.
  std::function<bool(int64_t index, const Labels& labels, SampleRng& rng, int& cx, int& cy)>
      crop_center = {};
  // Class-first rare-class sampling (above); a replaced slot's crop is centred by it, not by
  // crop_center.
  ClassFirstSampling class_first = {};
};

struct Batch {
  Tensor images;                 // f32 [N, 3, H, W], normalised
  Tensor labels;                 // u8 [N, H, W], 255 = ignore (and padding)
  std::vector<int64_t> indices;  // dataset indices of the N samples
  std::vector<AugmentDraw> draws;  // each sample's geometry (augment_label_column/row)
};

class Loader {
 public:
  Loader(Dataset dataset, LoaderOptions options);
  // Several datasets concatenated in order (index i of part k is offset_k + i), each read
  // with its own label encoding: e.g. a source subset plus pseudo-labelled target images.
  Loader(std::vector<Dataset> datasets, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  const Dataset& dataset() const;  // the first part
  int64_t size() const;             // samples over all parts
  int64_t batches_per_epoch() const;  // global batches (each rank gets its slice of each)
  // The epoch's sample order: a permutation of the dataset when shuffling, with the slots
  // class-first rare-class sampling replaced.
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  // Starts (or restarts) prefetching `epoch`; batches of an unfinished epoch are dropped.
  void start_epoch(int64_t epoch);
  // The next batch of the current epoch, nullopt at its end. Rethrows a worker's error
  // (e.g. a corrupt file) here, on the consumer's thread.
  std::optional<Batch> next();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// A crop centre on class `c`: the pixel of `labels` holding c at raster rank ⌊u·count⌋
// (u in [0, 1)), in (cx, cy); false when no pixel holds c.
bool pixel_of_class(const Labels& labels, int c, double u, int& cx, int& cy);

}  // namespace cbst::data
