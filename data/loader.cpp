// The threaded loader. Workers claim batch numbers in order, build them into host buffers,
// and park them in `ready`; the consumer takes batch k only, so the delivery order never
// depends on which worker finishes first.
#include "data/loader.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "data/sample_rng.h"
#include "engine/check.h"

namespace cbst::data {

namespace {

// Host-side batch, turned into tensors on the consumer's thread (device copies stay there).
struct HostBatch {
  int64_t n = 0, h = 0, w = 0;
  std::vector<float> images;
  std::vector<uint8_t> labels;
  std::vector<int64_t> indices;
  std::vector<AugmentDraw> draws;
  std::exception_ptr error;
};

// Stream numbers for SampleRng's index slot that no dataset index reaches.
constexpr uint64_t kOrderStream = ~uint64_t(0);
// Seed offsets of the colour-jitter stream, crop placement and class-first draws ("jitter",
// "mining", "rcs" in ASCII).
constexpr uint64_t kJitterSeed = 0x6a6974746572ull;
constexpr uint64_t kCropSeed = 0x6d696e696e67ull;
constexpr uint64_t kClassFirstSeed = 0x726373ull;

// One place in an epoch: the sample, the key its augmentation draws are made from (its index,
// or for a class-first draw a number past every index), and the class its crop is centred
// on (-1: none forced).
struct Slot {
  int64_t index = 0;
  uint64_t key = 0;
  int centre = -1;
};

}  // namespace

struct Loader::State {
  std::vector<Dataset> parts;      // concatenated in order (ConcatDataset)
  std::vector<LabelMap> label_maps;  // one per part: each part keeps its own label encoding
  std::vector<int64_t> offsets;      // first global index of each part, then the total
  LoaderOptions options;

  std::mutex mutex;
  std::condition_variable cv;
  bool stop = false;
  uint64_t generation = 0;     // bumps on start_epoch; stale work is discarded
  bool active = false;
  int64_t epoch = 0;
  std::vector<Slot> order;     // this epoch's samples
  int64_t total = 0;           // batches this epoch
  int64_t claimed = 0;         // next batch a worker may take
  int64_t consumed = 0;        // next batch the consumer takes
  std::map<int64_t, HostBatch> ready;
  std::vector<std::thread> threads;

  State(std::vector<Dataset> d, LoaderOptions o)
      : parts(std::move(d)), options(std::move(o)) {
    offsets.push_back(0);
    for (const Dataset& p : parts) {
      label_maps.push_back(p.label_map(options.classes));
      offsets.push_back(offsets.back() + int64_t(p.size()));
    }
  }

  int64_t size() const { return offsets.back(); }
  size_t part_of(int64_t index) const {
    return size_t(std::upper_bound(offsets.begin(), offsets.end(), index) - offsets.begin() - 1);
  }
  LoadedSample load(int64_t index) const {
    const size_t p = part_of(index);
    return parts[p].load(size_t(index - offsets[p]), label_maps[p]);
  }
  const std::string& image_path(int64_t index) const {
    const size_t p = part_of(index);
    return parts[p].sample(size_t(index - offsets[p])).image;
  }

  // The epoch's slots: the (shuffled) order, then the class-first replacements.
  std::vector<Slot> plan(int64_t epoch) const {
    const int64_t n = size();
    std::vector<Slot> slots(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) slots[size_t(i)] = {.index = i, .key = uint64_t(i)};
    if (options.shuffle) {
      SampleRng rng(options.seed, uint64_t(epoch), kOrderStream);
      for (int64_t i = n - 1; i > 0; --i) std::swap(slots[size_t(i)], slots[size_t(rng.below(uint64_t(i + 1)))]);
    }
    const ClassFirstSampling& cf = options.class_first;
    if (cf.probability <= 0) return slots;
    std::vector<double> weight(cf.class_weight.size(), 0.0);
    double sum = 0;
    for (size_t c = 0; c < weight.size(); ++c)
      if (c < cf.images_with_class.size() && !cf.images_with_class[c].empty() && cf.class_weight[c] > 0)
        sum += weight[c] = cf.class_weight[c];
    if (!(sum > 0)) return slots;
    for (int64_t k = 0; k < n; ++k) {
      Slot& slot = slots[size_t(k)];
      SampleRng rng(options.seed ^ kClassFirstSeed, uint64_t(epoch), uint64_t(k));
      const double u_pick = rng.uniform(), u_class = rng.uniform();
      if (slot.index >= cf.end_index || u_pick >= cf.probability) continue;
      // The first class whose cumulative weight passes u·sum (the last drawable one, should
      // rounding leave the sum short).
      size_t c = 0;
      double acc = 0;
      for (size_t j = 0; j < weight.size(); ++j) {
        if (weight[j] <= 0) continue;
        c = j;
        if ((acc += weight[j]) > u_class * sum) break;
      }
      const std::vector<int64_t>& images = cf.images_with_class[c];
      slot = {.index = images[size_t(rng.below(uint64_t(images.size())))],
              .key = uint64_t(n) + uint64_t(k),
              .centre = int(c)};
    }
    return slots;
  }

  HostBatch build(int64_t epoch_index, const std::vector<Slot>& slots) const {
    HostBatch hb;
    hb.n = int64_t(slots.size());
    for (const Slot& slot : slots) hb.indices.push_back(slot.index);
    try {
      std::vector<LoadedSample> samples;
      samples.reserve(size_t(hb.n));
      for (int64_t k = 0; k < hb.n; ++k) {
        const int64_t index = hb.indices[k];
        const Slot& slot = slots[size_t(k)];
        LoadedSample s = load(index);
        AugmentDraw d;
        if (options.augment && (options.color_jitter.enabled() || options.blur.enabled())) {
          const size_t part = part_of(index);
          if (options.photometric_parts.empty() ||
              (part < options.photometric_parts.size() && options.photometric_parts[part])) {
            SampleRng jitter_rng(options.seed ^ kJitterSeed, uint64_t(epoch_index), slot.key);
            if (options.color_jitter.enabled()) color_jitter(s.image, options.color_jitter, jitter_rng);
            if (options.blur.enabled()) gaussian_blur(s.image, options.blur, jitter_rng);
          }
        }
        if (options.augment) {
          SampleRng rng(options.seed, uint64_t(epoch_index), slot.key);
          d = draw_augment(options.augment_params, s.image.width, s.image.height, rng);
          if ((options.crop_center || slot.centre >= 0) && !s.labels.ids.empty() &&
              options.augment_params.crop_width > 0)
            place_crop(d, slot, epoch_index, s);
        } else {
          d.scaled_width = d.out_width = s.image.width;
          d.scaled_height = d.out_height = s.image.height;
          if (k > 0 && (d.out_height != hb.draws[0].out_height || d.out_width != hb.draws[0].out_width))
            CBST_THROW("loader: images of one batch differ in size: ", image_path(hb.indices[0]), " is ",
                       hb.draws[0].out_width, "x", hb.draws[0].out_height, " but ", image_path(index), " is ",
                       d.out_width, "x", d.out_height, "; use batch size 1");
        }
        hb.h = std::max<int64_t>(hb.h, d.out_height);
        hb.w = std::max<int64_t>(hb.w, d.out_width);
        hb.draws.push_back(d);
        samples.push_back(std::move(s));
      }
      // Augmented samples of unequal size (random scale without a crop) are padded at the
      // bottom and right to the batch's largest, as mmseg's stack_batch: image 0 after
      // normalisation (the mean colour), labels 255. Equal sizes take the direct path.
      const size_t plane = size_t(hb.h * hb.w);
      hb.images.assign(size_t(hb.n) * 3 * plane, 0.0f);
      hb.labels.assign(size_t(hb.n) * plane, uint8_t(255));
      std::vector<float> image_tmp;
      std::vector<uint8_t> label_tmp;
      for (int64_t k = 0; k < hb.n; ++k) {
        const AugmentDraw& d = hb.draws[size_t(k)];
        const LoadedSample& s = samples[size_t(k)];
        const Labels* labels = s.labels.ids.empty() ? nullptr : &s.labels;
        float* image_out = hb.images.data() + size_t(k) * 3 * plane;
        uint8_t* labels_out = hb.labels.data() + size_t(k) * plane;
        if (d.out_height == hb.h && d.out_width == hb.w) {
          augment_sample(image_out, labels_out, s.image, labels, d, options.normalization);
          continue;
        }
        const size_t oh = size_t(d.out_height), ow = size_t(d.out_width);
        image_tmp.resize(3 * oh * ow);
        label_tmp.resize(oh * ow);
        augment_sample(image_tmp.data(), label_tmp.data(), s.image, labels, d, options.normalization);
        for (size_t c = 0; c < 3; ++c)
          for (size_t y = 0; y < oh; ++y)
            std::memcpy(image_out + c * plane + y * size_t(hb.w), image_tmp.data() + (c * oh + y) * ow,
                        ow * sizeof(float));
        for (size_t y = 0; y < oh; ++y)
          std::memcpy(labels_out + y * size_t(hb.w), label_tmp.data() + y * ow, ow);
      }
    } catch (...) {
      hb.error = std::current_exception();
    }
    return hb;
  }

  // Re-centres the crop of `d` on the slot's class, or where options.crop_center asks,
  // clamped inside the scaled image.
  void place_crop(AugmentDraw& d, const Slot& slot, int64_t epoch_index, const LoadedSample& s) const {
    // A stream of its own (seed offset), so mining never shifts the other draws.
    SampleRng rng(options.seed ^ kCropSeed, uint64_t(epoch_index), slot.key);
    int cx = 0, cy = 0;
    if (slot.centre >= 0) {
      if (!pixel_of_class(s.labels, slot.centre, rng.uniform(), cx, cy)) return;
    } else if (!options.crop_center(slot.index, s.labels, rng, cx, cy)) {
      return;
    }
    const double sx = double(d.scaled_width) / s.image.width, sy = double(d.scaled_height) / s.image.height;
    auto origin = [](double centre, int crop, int scaled) {
      const int o = int(std::lround(centre - crop / 2.0));
      return std::clamp(o, 0, std::max(0, scaled - crop));
    };
    d.x0 = origin((cx + 0.5) * sx, d.out_width, d.scaled_width);
    d.y0 = origin((cy + 0.5) * sy, d.out_height, d.scaled_height);
  }

  std::vector<Slot> batch_slots(int64_t b) const {
    const int64_t bs = options.batch_size;
    const int64_t begin = (b * options.shard_count + options.shard_index) * bs;
    const int64_t end = std::min<int64_t>(begin + bs, int64_t(order.size()));
    return std::vector<Slot>(order.begin() + begin, order.begin() + end);
  }

  void worker() {
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      cv.wait(lock, [&] {
        return stop || (active && claimed < total && claimed < consumed + options.prefetch_batches);
      });
      if (stop) return;
      const int64_t b = claimed++;
      const uint64_t gen = generation;
      const int64_t ep = epoch;
      const std::vector<Slot> slots = batch_slots(b);
      lock.unlock();
      HostBatch hb = build(ep, slots);
      lock.lock();
      if (gen == generation) ready.emplace(b, std::move(hb));
      cv.notify_all();
    }
  }
};

Loader::Loader(Dataset dataset, LoaderOptions options)
    : Loader(std::vector<Dataset>{std::move(dataset)}, std::move(options)) {}

Loader::Loader(std::vector<Dataset> datasets, LoaderOptions options)
    : state_(std::make_unique<State>(std::move(datasets), std::move(options))) {
  CBST_CHECK(!state_->parts.empty(), "loader: no dataset given");
  const LoaderOptions& o = state_->options;
  CBST_CHECK(o.batch_size > 0, "loader: batch_size must be positive, got ", o.batch_size);
  CBST_CHECK(o.workers >= 0, "loader: workers must be >= 0, got ", o.workers);
  CBST_CHECK(o.prefetch_batches > 0, "loader: prefetch_batches must be positive");
  CBST_CHECK(o.shard_count >= 1 && o.shard_index >= 0 && o.shard_index < o.shard_count,
             "loader: shard ", o.shard_index, " of ", o.shard_count, " does not exist");
  CBST_CHECK(o.drop_last || o.shard_count == 1, "loader: a sharded loader (", o.shard_count,
             " shards) needs drop_last, so that every rank gets a full slice of every batch");
  CBST_CHECK(state_->size() > 0, "loader: the dataset is empty: ", state_->parts[0].describe());
  for (int i = 0; i < o.workers; ++i) state_->threads.emplace_back([s = state_.get()] { s->worker(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stop = true;
  }
  state_->cv.notify_all();
  for (std::thread& t : state_->threads) t.join();
}

const Dataset& Loader::dataset() const { return state_->parts[0]; }
int64_t Loader::size() const { return state_->size(); }

int64_t Loader::batches_per_epoch() const {
  const int64_t n = state_->size(), bs = int64_t(state_->options.batch_size) * state_->options.shard_count;
  return state_->options.drop_last ? n / bs : (n + bs - 1) / bs;
}

std::vector<int64_t> Loader::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order;
  for (const Slot& slot : state_->plan(epoch)) order.push_back(slot.index);
  return order;
}

void Loader::start_epoch(int64_t epoch) {
  std::vector<Slot> order = state_->plan(epoch);
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    ++state_->generation;
    state_->active = true;
    state_->epoch = epoch;
    state_->order = std::move(order);
    state_->total = batches_per_epoch();
    state_->claimed = state_->consumed = 0;
    state_->ready.clear();
  }
  state_->cv.notify_all();
}

std::optional<Batch> Loader::next() {
  State& s = *state_;
  HostBatch hb;
  {
    std::unique_lock<std::mutex> lock(s.mutex);
    CBST_CHECK(s.active, "loader: call start_epoch(epoch) before next()");
    if (s.consumed >= s.total) return std::nullopt;
    const int64_t b = s.consumed;
    if (s.threads.empty()) {
      const int64_t ep = s.epoch;
      const std::vector<Slot> slots = s.batch_slots(b);
      ++s.claimed;
      lock.unlock();
      hb = s.build(ep, slots);
      lock.lock();
    } else {
      s.cv.wait(lock, [&] { return s.ready.count(b) > 0; });
      hb = std::move(s.ready.at(b));
      s.ready.erase(b);
    }
    ++s.consumed;
  }
  s.cv.notify_all();
  if (hb.error) std::rethrow_exception(hb.error);
  Batch batch;
  batch.indices = std::move(hb.indices);
  batch.draws = std::move(hb.draws);
  batch.images = Tensor::from_vector<float>(hb.images, {hb.n, 3, hb.h, hb.w});
  batch.labels = Tensor::from_vector<uint8_t>(hb.labels, {hb.n, hb.h, hb.w});
  if (!s.options.device.is_cpu()) {
    batch.images = batch.images.to(s.options.device);
    batch.labels = batch.labels.to(s.options.device);
  }
  return batch;
}

bool pixel_of_class(const Labels& labels, int c, double u, int& cx, int& cy) {
  if (c < 0 || c > 255) return false;
  const int64_t count = std::count(labels.ids.begin(), labels.ids.end(), uint8_t(c));
  if (count == 0) return false;
  int64_t rank = std::min<int64_t>(count - 1, int64_t(u * double(count)));
  for (size_t i = 0; i < labels.ids.size(); ++i)
    if (labels.ids[i] == uint8_t(c) && rank-- == 0) {
      cx = int(i % size_t(labels.width));
      cy = int(i / size_t(labels.width));
      return true;
    }
  return false;
}

}  // namespace cbst::data
