// The threaded loader. Workers claim batch numbers in order, build them into host buffers,
// and park them in `ready`; the consumer takes batch k only, so the delivery order never
// depends on which worker finishes first.
#include "data/loader.h"

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
  std::exception_ptr error;
};

// Stream numbers for SampleRng's index slot that no dataset index reaches.
constexpr uint64_t kOrderStream = ~uint64_t(0);

}  // namespace

struct Loader::State {
  Dataset dataset;
  LoaderOptions options;
  LabelMap label_map;

  std::mutex mutex;
  std::condition_variable cv;
  bool stop = false;
  uint64_t generation = 0;     // bumps on start_epoch; stale work is discarded
  bool active = false;
  int64_t epoch = 0;
  std::vector<int64_t> order;  // this epoch's sample order
  int64_t total = 0;           // batches this epoch
  int64_t claimed = 0;         // next batch a worker may take
  int64_t consumed = 0;        // next batch the consumer takes
  std::map<int64_t, HostBatch> ready;
  std::vector<std::thread> threads;

  State(Dataset d, LoaderOptions o)
      : dataset(std::move(d)), options(std::move(o)), label_map(dataset.label_map(options.classes)) {}

  HostBatch build(int64_t epoch_index, std::vector<int64_t> indices) const {
    HostBatch hb;
    hb.indices = std::move(indices);
    hb.n = int64_t(hb.indices.size());
    try {
      for (int64_t k = 0; k < hb.n; ++k) {
        const int64_t index = hb.indices[k];
        const LoadedSample s = dataset.load(size_t(index), label_map);
        AugmentDraw d;
        if (options.augment) {
          SampleRng rng(options.seed, uint64_t(epoch_index), uint64_t(index));
          d = draw_augment(options.augment_params, s.image.width, s.image.height, rng);
        } else {
          d.scaled_width = d.out_width = s.image.width;
          d.scaled_height = d.out_height = s.image.height;
        }
        if (k == 0) {
          hb.h = d.out_height;
          hb.w = d.out_width;
          hb.images.resize(size_t(hb.n) * 3 * hb.h * hb.w);
          hb.labels.resize(size_t(hb.n) * hb.h * hb.w);
        } else if (d.out_height != hb.h || d.out_width != hb.w) {
          CBST_THROW("loader: samples of one batch differ in size: ", dataset.sample(hb.indices[0]).image,
                     " gives ", hb.w, "x", hb.h, " but ", dataset.sample(index).image, " gives ",
                     d.out_width, "x", d.out_height, "; use a crop size or batch size 1");
        }
        augment_sample(hb.images.data() + size_t(k) * 3 * hb.h * hb.w,
                       hb.labels.data() + size_t(k) * hb.h * hb.w, s.image,
                       s.labels.ids.empty() ? nullptr : &s.labels, d, options.normalization);
      }
    } catch (...) {
      hb.error = std::current_exception();
    }
    return hb;
  }

  std::vector<int64_t> batch_indices(int64_t b) const {
    const int64_t bs = options.batch_size;
    const int64_t begin = b * bs, end = std::min<int64_t>(begin + bs, int64_t(order.size()));
    return std::vector<int64_t>(order.begin() + begin, order.begin() + end);
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
      std::vector<int64_t> indices = batch_indices(b);
      lock.unlock();
      HostBatch hb = build(ep, std::move(indices));
      lock.lock();
      if (gen == generation) ready.emplace(b, std::move(hb));
      cv.notify_all();
    }
  }
};

Loader::Loader(Dataset dataset, LoaderOptions options)
    : state_(std::make_unique<State>(std::move(dataset), std::move(options))) {
  const LoaderOptions& o = state_->options;
  CBST_CHECK(o.batch_size > 0, "loader: batch_size must be positive, got ", o.batch_size);
  CBST_CHECK(o.workers >= 0, "loader: workers must be >= 0, got ", o.workers);
  CBST_CHECK(o.prefetch_batches > 0, "loader: prefetch_batches must be positive");
  CBST_CHECK(state_->dataset.size() > 0, "loader: the dataset is empty: ", state_->dataset.describe());
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

const Dataset& Loader::dataset() const { return state_->dataset; }

int64_t Loader::batches_per_epoch() const {
  const int64_t n = int64_t(state_->dataset.size()), bs = state_->options.batch_size;
  return state_->options.drop_last ? n / bs : (n + bs - 1) / bs;
}

std::vector<int64_t> Loader::epoch_order(int64_t epoch) const {
  const int64_t n = int64_t(state_->dataset.size());
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  if (state_->options.shuffle) {
    SampleRng rng(state_->options.seed, uint64_t(epoch), kOrderStream);
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[int64_t(rng.below(uint64_t(i + 1)))]);
  }
  return order;
}

void Loader::start_epoch(int64_t epoch) {
  std::vector<int64_t> order = epoch_order(epoch);
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
      std::vector<int64_t> indices = s.batch_indices(b);
      ++s.claimed;
      lock.unlock();
      hb = s.build(ep, std::move(indices));
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
  batch.images = Tensor::from_vector<float>(hb.images, {hb.n, 3, hb.h, hb.w});
  batch.labels = Tensor::from_vector<uint8_t>(hb.labels, {hb.n, hb.h, hb.w});
  if (!s.options.device.is_cpu()) {
    batch.images = batch.images.to(s.options.device);
    batch.labels = batch.labels.to(s.options.device);
  }
  return batch;
}

}  // namespace cbst::data
