#include "selftrain/distributed_thresholds.h"

#include <algorithm>
#include <cstring>
#include <tuple>

#include "selftrain/labeling_kernels.h"

namespace cbst {

namespace {

constexpr int64_t kBuckets = int64_t(1) << 16;

// The bucket (from the top) where the running count reaches t: {bucket, rank of the wanted
// entry within it, 1-based}.
std::pair<uint32_t, int64_t> find_bucket(const int64_t* hist, int64_t t) {
  int64_t above = 0;
  for (int64_t b = kBuckets - 1; b >= 0; --b) {
    if (above + hist[b] >= t) return {uint32_t(b), t - above};
    above += hist[b];
  }
  CBST_THROW("distributed_class_thresholds: rank ", t, " lies beyond the merged pool of ", above,
             " entries; did the ranks call it with different parameters?");
}

}  // namespace

ClassThresholds distributed_class_thresholds(const Tensor& local_probs, const Tensor& spatial_prior,
                                             const ThresholdParams& params, dist::Communicator& comm) {
  const char* op = "distributed_class_thresholds";
  CBST_CHECK(params.portion >= 0.0 && params.portion <= 1.0, op, ": portion must lie in [0, 1], got ",
             params.portion);
  CBST_CHECK(params.pool_stride >= 1, op, ": pool_stride must be ≥ 1, got ", params.pool_stride);
  const Tensor probs = local_probs.to(Device::cpu());
  const Tensor prior = spatial_prior.defined() ? spatial_prior.to(Device::cpu()) : Tensor();
  Tensor probs_c, prior_c;
  const labeling::ScoreSource src = labeling::score_source(op, probs, prior, params.label_size, probs_c, prior_c);
  const labeling::PoolParams pp{.global_pool = params.policy == ThresholdPolicy::st,
                                .portion = params.portion,
                                .pool_stride = params.pool_stride,
                                .authors_sampling = params.sampling == PoolSampling::authors};
  const labeling::Pools pools = labeling::collect_pools_cpu(src, probs.size(0), pp);
  const int64_t classes = src.classes, n_pools = int64_t(pools.keys.size());

  // Global pool sizes and per-class counts; the authors' zeros join every pool once.
  std::vector<int64_t> sizes(size_t(n_pools + classes));
  for (int64_t j = 0; j < n_pools; ++j) sizes[size_t(j)] = int64_t(pools.keys[size_t(j)].size());
  std::copy(pools.counts.begin(), pools.counts.end(), sizes.begin() + n_pools);
  comm.all_reduce_sum(sizes.data(), int64_t(sizes.size()));
  const int64_t zeros = pp.authors_sampling ? labeling::authors_zero_entries(pp.global_pool, classes) : 0;
  const uint32_t zero_key = labeling::order_key(0.0f);

  std::vector<int64_t> t(static_cast<size_t>(n_pools));
  for (int64_t j = 0; j < n_pools; ++j) t[size_t(j)] = labeling::rank_count(sizes[size_t(j)] + zeros, params.portion);

  // Pass 1: high 16 bits.
  std::vector<int64_t> hist(size_t(n_pools * kBuckets), 0);
  for (int64_t j = 0; j < n_pools; ++j)
    for (uint32_t key : pools.keys[size_t(j)]) ++hist[size_t(j * kBuckets + (key >> 16))];
  comm.all_reduce_sum(hist.data(), int64_t(hist.size()));
  std::vector<uint32_t> high(size_t(n_pools), 0);
  std::vector<int64_t> within(size_t(n_pools), 0);
  for (int64_t j = 0; j < n_pools; ++j) {
    if (t[size_t(j)] == 0) continue;
    hist[size_t(j * kBuckets + (zero_key >> 16))] += zeros;
    std::tie(high[size_t(j)], within[size_t(j)]) = find_bucket(&hist[size_t(j * kBuckets)], t[size_t(j)]);
  }

  // Pass 2: low 16 bits of the keys in the chosen bucket.
  std::fill(hist.begin(), hist.end(), 0);
  for (int64_t j = 0; j < n_pools; ++j) {
    if (t[size_t(j)] == 0) continue;
    for (uint32_t key : pools.keys[size_t(j)])
      if ((key >> 16) == high[size_t(j)]) ++hist[size_t(j * kBuckets + (key & 0xffffu))];
  }
  comm.all_reduce_sum(hist.data(), int64_t(hist.size()));
  std::vector<float> value(size_t(n_pools), 1.0f);
  for (int64_t j = 0; j < n_pools; ++j) {
    if (t[size_t(j)] == 0) continue;
    if ((zero_key >> 16) == high[size_t(j)]) hist[size_t(j * kBuckets + (zero_key & 0xffffu))] += zeros;
    const uint32_t low = find_bucket(&hist[size_t(j * kBuckets)], within[size_t(j)]).first;
    value[size_t(j)] = labeling::usable_threshold(labeling::key_value((high[size_t(j)] << 16) | low));
  }

  std::vector<float> thresholds(static_cast<size_t>(classes));
  for (int64_t c = 0; c < classes; ++c) thresholds[size_t(c)] = value[size_t(pp.global_pool ? 0 : c)];
  const std::vector<int64_t> pool_sizes(sizes.begin() + n_pools, sizes.end());
  return {Tensor::from_vector<float>(thresholds, {classes}).to(local_probs.device()),
          Tensor::from_vector<int64_t>(pool_sizes, {classes}).to(local_probs.device())};
}

Tensor all_gather_images(const Tensor& local, dist::Communicator& comm) {
  CBST_CHECK(local.dim() >= 1 && local.dtype() == DType::f32, "all_gather_images: expected an f32 (N, ...) tensor, got ",
             local.str());
  const Tensor host = local.to(Device::cpu()).contiguous();
  const std::vector<uint8_t> bytes = comm.all_gather(host.raw_data(), int64_t(host.nbytes()));
  const int64_t per_image = host.size(0) > 0 ? host.numel() / host.size(0) : 0;
  CBST_CHECK(per_image > 0 && int64_t(bytes.size()) % (per_image * int64_t(sizeof(float))) == 0,
             "all_gather_images: the ranks' images differ in shape (this rank: ", local.str(), ")");
  Shape shape = host.shape();
  shape[0] = int64_t(bytes.size()) / (per_image * int64_t(sizeof(float)));
  Tensor out = Tensor::empty(shape);
  std::memcpy(out.raw_data(), bytes.data(), bytes.size());
  return out;
}

}  // namespace cbst
