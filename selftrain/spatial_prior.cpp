// Spatial priors: counting, Gaussian smoothing, normalisation (see spatial_prior.h).
#include "selftrain/spatial_prior.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <mutex>
#include <thread>

#include "data/label_map.h"

namespace cbst {
namespace {

// Per-thread count arrays are C·H·W u32; above this many bytes in all, fewer threads count
// (decoding is the slow part, but a full-resolution grid per thread would not fit).
constexpr size_t kMaxCountBytes = size_t(1) << 30;

void check_options(const SpatialPriorOptions& o) {
  CBST_CHECK(o.height >= 1 && o.width >= 1, "spatial prior grid ", o.height, "x", o.width,
             " must have positive sizes (e.g. 128x256)");
  CBST_CHECK(o.num_classes >= 1 && o.num_classes <= 255, "spatial prior: num_classes ",
             o.num_classes, " must be in [1, 255] (255 is the ignore label)");
  CBST_CHECK(std::isfinite(o.sigma) && o.sigma >= 0, "spatial prior: sigma ", o.sigma,
             " must be a finite number >= 0 (full-resolution pixels; 0 = no smoothing)");
  CBST_CHECK(std::isfinite(o.support) && o.support >= 0, "spatial prior: support ", o.support,
             " must be a finite number >= 0 (full-resolution pixels)");
  CBST_CHECK(o.image_height >= 0 && o.image_width >= 0, "spatial prior: image size ",
             o.image_height, "x", o.image_width, " must be >= 0 (0 = mean of the label maps)");
}

// One 1-D pass along an axis with zero padding: out[i] = Σ_k w[k + R]·in[i + k] over the
// in-range i + k. `stride` steps between consecutive elements of a line, `line_stride` between
// lines; `n` elements per line, `lines` lines.
void convolve_axis(double* out, const double* in, const std::vector<double>& w, int64_t n,
                   int64_t stride, int64_t lines, int64_t line_stride) {
  const int64_t r = int64_t(w.size() - 1) / 2;
  for (int64_t l = 0; l < lines; ++l) {
    const double* src = in + l * line_stride;
    double* dst = out + l * line_stride;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t lo = std::max<int64_t>(-r, -i), hi = std::min<int64_t>(r, n - 1 - i);
      double acc = 0;
      for (int64_t k = lo; k <= hi; ++k) acc += w[size_t(k + r)] * src[(i + k) * stride];
      dst[i * stride] = acc;
    }
  }
}

}  // namespace

std::vector<double> spatial_prior_kernel(double sigma, double support, int64_t grid, double image) {
  CBST_CHECK(grid >= 1 && image > 0, "spatial_prior_kernel: grid ", grid, " and image size ",
             image, " must be positive");
  const double scale = double(grid) / image;
  const double s = sigma * scale;
  // The small epsilon keeps an exact ±35 px support at scale 1 from flooring to 34 through
  // rounding in support/2·scale.
  const int64_t r = int64_t(std::floor(support / 2 * scale + 1e-9));
  if (s <= 0 || r <= 0) return {1.0};
  std::vector<double> w(size_t(2 * r + 1));
  double sum = 0;
  for (int64_t k = -r; k <= r; ++k) sum += w[size_t(k + r)] = std::exp(-double(k * k) / (2 * s * s));
  for (double& v : w) v /= sum;
  return w;
}

SpatialPriorAccumulator::SpatialPriorAccumulator(const SpatialPriorOptions& options)
    : options_(options) {
  check_options(options_);
  options_.progress = nullptr;  // an accumulator never reports; compute_spatial_prior does
  counts_.assign(size_t(options_.num_classes * options_.height * options_.width), 0);
  pixels_seen_.assign(size_t(options_.num_classes), 0);
}

void SpatialPriorAccumulator::add(const data::Labels& labels) {
  const int64_t h = labels.height, w = labels.width;
  CBST_CHECK(h >= 1 && w >= 1 && labels.ids.size() == size_t(h * w), "spatial prior: label map ",
             w, "x", h, " (width x height) holds ", labels.ids.size(), " ids, expected ", h * w);
  const int c_count = options_.num_classes;
  // Validate and count at full resolution first, so a bad map leaves the counts untouched.
  std::vector<int64_t> seen(size_t(c_count), 0);
  for (size_t i = 0; i < labels.ids.size(); ++i) {
    const uint8_t id = labels.ids[i];
    if (id == data::kIgnoreLabel) continue;
    CBST_CHECK(id < c_count, "spatial prior: label ", int(id), " at (y=", int64_t(i) / w,
               ", x=", int64_t(i) % w, ") is neither a class of the ", c_count,
               "-class space nor ignore (255); map stored labels through a data::LabelMap first");
    ++seen[id];
  }
  const int64_t gh = options_.height, gw = options_.width, plane = gh * gw;
  std::vector<int64_t> src_x(static_cast<size_t>(gw));
  for (int64_t x = 0; x < gw; ++x) src_x[size_t(x)] = x * w / gw;
  for (int64_t y = 0; y < gh; ++y) {
    const uint8_t* row = labels.ids.data() + (y * h / gh) * w;
    uint32_t* out = counts_.data() + y * gw;
    for (int64_t x = 0; x < gw; ++x) {
      const uint8_t id = row[src_x[size_t(x)]];
      if (id != data::kIgnoreLabel) ++out[id * plane + x];
    }
  }
  for (int c = 0; c < c_count; ++c) pixels_seen_[size_t(c)] += seen[size_t(c)];
  ++images_;
  sum_height_ += h;
  sum_width_ += w;
}

void SpatialPriorAccumulator::merge(const SpatialPriorAccumulator& other) {
  CBST_CHECK(other.options_.num_classes == options_.num_classes &&
                 other.options_.height == options_.height && other.options_.width == options_.width,
             "spatial prior: cannot merge a ", other.options_.num_classes, "-class ",
             other.options_.height, "x", other.options_.width, " accumulator into a ",
             options_.num_classes, "-class ", options_.height, "x", options_.width, " one");
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  for (size_t c = 0; c < pixels_seen_.size(); ++c) pixels_seen_[c] += other.pixels_seen_[c];
  images_ += other.images_;
  sum_height_ += other.sum_height_;
  sum_width_ += other.sum_width_;
}

std::vector<int64_t> SpatialPriorAccumulator::grid_counts() const {
  const size_t plane = size_t(options_.height * options_.width);
  std::vector<int64_t> out(size_t(options_.num_classes), 0);
  for (size_t i = 0; i < counts_.size(); ++i) out[i / plane] += counts_[i];
  return out;
}

std::pair<double, double> SpatialPriorAccumulator::image_size() const {
  if (options_.image_height > 0 && options_.image_width > 0)
    return {double(options_.image_height), double(options_.image_width)};
  if (images_ == 0) return {0.0, 0.0};
  const double h = options_.image_height > 0 ? double(options_.image_height)
                                             : double(sum_height_) / double(images_);
  const double w = options_.image_width > 0 ? double(options_.image_width)
                                            : double(sum_width_) / double(images_);
  return {h, w};
}

Tensor SpatialPriorAccumulator::finalize() const {
  const int64_t c_count = options_.num_classes, gh = options_.height, gw = options_.width;
  const int64_t plane = gh * gw;
  auto [image_h, image_w] = image_size();
  // No map and no explicit size: nothing to smooth, every class is uniform anyway.
  if (image_h <= 0) image_h = double(gh);
  if (image_w <= 0) image_w = double(gw);
  const std::vector<double> ky = spatial_prior_kernel(options_.sigma, options_.support, gh, image_h);
  const std::vector<double> kx = spatial_prior_kernel(options_.sigma, options_.support, gw, image_w);

  Tensor out = Tensor::empty({c_count, gh, gw});
  float* q = out.data<float>();
#pragma omp parallel for schedule(dynamic)
  for (int64_t c = 0; c < c_count; ++c) {
    const uint32_t* counts = counts_.data() + c * plane;
    float* dst = q + c * plane;
    if (std::all_of(counts, counts + plane, [](uint32_t v) { return v == 0; })) {
      std::fill(dst, dst + plane, float(1.0 / double(plane)));
      continue;
    }
    std::vector<double> a(counts, counts + plane), b(static_cast<size_t>(plane));
    convolve_axis(b.data(), a.data(), kx, gw, 1, gh, gw);  // along rows
    convolve_axis(a.data(), b.data(), ky, gh, gw, gw, 1);  // along columns
    double total = 0;
    for (double v : a) total += v;
    for (int64_t i = 0; i < plane; ++i) dst[i] = float(a[size_t(i)] / total);
  }
  return out;
}

SpatialPriorResult compute_spatial_prior_with_stats(const data::Dataset& source,
                                                    const SpatialPriorOptions& options) {
  check_options(options);
  CBST_CHECK(data::num_classes(options.class_space) == options.num_classes, "spatial prior: class space ",
             data::class_space_name(options.class_space), " has ",
             data::num_classes(options.class_space), " classes, options say ", options.num_classes);
  const size_t n = source.size();
  if (n == 0) CBST_THROW(source.describe(), ": no samples to count; check the dataset path and --list");
  const data::LabelMap map = source.label_map(options.class_space);

  const size_t count_bytes = size_t(options.num_classes * options.height * options.width) * 4;
  size_t threads = options.threads > 0 ? size_t(options.threads)
                                       : std::max<size_t>(1, std::thread::hardware_concurrency());
  threads = std::clamp<size_t>(std::min(threads, kMaxCountBytes / std::max<size_t>(count_bytes, 1)), 1, n);

  std::vector<SpatialPriorAccumulator> parts(threads, SpatialPriorAccumulator(options));
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mutex;  // guards `error`, `done` and the progress callback
  std::exception_ptr error;
  size_t done = 0;
  auto work = [&](size_t t) {
    for (size_t i = next++; i < n && !failed; i = next++) {
      try {
        const data::RawLabels raw = source.read_raw_labels(i);
        parts[t].add(map.apply_and_warn(raw, source.sample(i).label));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
        failed = true;
        return;
      }
      std::lock_guard<std::mutex> lock(mutex);
      ++done;
      if (options.progress) options.progress(done, n);
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (std::thread& th : pool) th.join();
  if (error) std::rethrow_exception(error);

  for (size_t t = 1; t < threads; ++t) parts[0].merge(parts[t]);
  const auto [image_h, image_w] = parts[0].image_size();
  return {.prior = parts[0].finalize(),
          .pixels_seen = parts[0].pixels_seen(),
          .images = parts[0].images(),
          .image_height = image_h,
          .image_width = image_w};
}

Tensor compute_spatial_prior(const data::Dataset& source, const SpatialPriorOptions& options) {
  return compute_spatial_prior_with_stats(source, options).prior;
}

}  // namespace cbst
