// CUDA kernels of pseudo-labelling (DESIGN §7, "The fused labelling kernels").
//
// Thresholds without sorting. Confidences are mapped to 32-bit order keys (labeling_math.h:
// order_key is monotone in the float value), and the t-th largest key of a pool is found
// digit by digit, 16 bits at a time:
//   pass 1 (wide, fused): interpolate p and q, s = q·p, argmax/max, and count every pool
//          entry into hist[pool][key >> 16] (65536 buckets per pool) and its class count;
//   select: per pool, t = ⌊n·p⌋; walking the buckets from the top, the bucket b holding
//          rank t and the rank r of the wanted entry inside it;
//   pass 2 (narrow): the same sweep, but only entries with key >> 16 = b of their pool
//          count, into hist[pool][key & 0xffff];
//   select: the low 16 bits l at rank r; threshold = value of (b << 16 | l).
// The authors' sampling (every K-th pixel of each class per image) first ranks each pixel
// within its class by tiles (tile_class_rank_kernel, tile_prefix_kernel), and their spurious
// zeros are added to the histograms as counts.
// Counting is exact integer work, so the result is the value a full descending sort would
// put at index t−1, ties included, and is deterministic.
//
// Contention: confidences cluster (near 1 without a prior), so many pixels of a warp hit the
// same bucket; the warp first groups equal (class, bucket) ids with __match_any_sync and one
// lane adds the group's size, cutting same-address atomics by up to 32×.
#include <algorithm>

#include <cub/block/block_scan.cuh>

#include "engine/cuda/context.h"
#include "engine/tensor.h"
#include "selftrain/labeling_kernels.h"

namespace cbst::labeling {

namespace {

using u64 = unsigned long long;

constexpr int kThreads = 256;
constexpr int kBucketBits = 16;
constexpr int64_t kBuckets = int64_t(1) << kBucketBits;
constexpr uint32_t kBucketMask = uint32_t(kBuckets - 1);
constexpr uint32_t kNoBucket = 0xffffffffu;  // also "no id" in warp aggregation
constexpr int kSelectThreads = 1024;
constexpr int kBucketsPerThread = int(kBuckets / kSelectThreads);

int sweep_blocks(int64_t n) {
  // Enough blocks to fill the device; the grid-stride loop does the rest, and fewer blocks
  // mean fewer flushes of the per-block class counts.
  static const int sms = [] {
    int v = 0;
    CBST_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount,
                                           cuda_current_device()));
    return v;
  }();
  return std::min(cuda_blocks(n, kThreads), std::max(1, sms * 8));
}

// The authors' sampling (PoolParams::authors_sampling) of a chunk of images: each pixel's
// rank among the pixels of its class in its tile (kThreads consecutive pixels of one image),
// and per tile and class the number of that class's pixels in the image's earlier tiles.
// Pixel k of image i is the (prefix[tile][c] + rank[i·H·W + k])-th pixel of its class c in
// raster order, and is kept iff that is a multiple of K.
struct ClassRanks {
  const uint8_t* rank = nullptr;    // (images, H·W); null: pixel-index sampling
  const u64* prefix = nullptr;      // (images · tiles_per_image, C)
  int64_t tiles_per_image = 0;
  int64_t every = 1;                // K
};

// Pass 1 (kNarrow = false) and pass 2 (kNarrow = true) over the pool entries: flat pixel
// k = m·K of each image, m = 0 … ⌈H·W/K⌉ − 1 (pixel-index
// sampling), or every pixel k with the authors' per-class rule.
template <bool kNarrow>
__global__ void __launch_bounds__(kThreads)
    pool_histogram_kernel(u64* __restrict__ hist, u64* __restrict__ class_counts,
                          const uint32_t* __restrict__ selected, ScoreSource src, int64_t images,
                          int64_t stride, bool global_pool, ClassRanks ranks) {
  __shared__ unsigned int counts[256];
  if (!kNarrow) {
    for (int c = threadIdx.x; c < src.classes; c += blockDim.x) counts[c] = 0;
    __syncthreads();
  }
  const int64_t pixels = int64_t(src.height) * src.width;
  const int64_t per_image = (pixels + stride - 1) / stride;
  const int64_t total = images * per_image;
  const int lane = threadIdx.x & 31;
  // `base` is uniform across the block, so every lane of a warp reaches __match_any_sync.
  for (int64_t base = int64_t(blockIdx.x) * blockDim.x; base < total;
       base += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = base + threadIdx.x;
    uint32_t id = kNoBucket;  // (class << 16) | digit
    int pool = 0;
    if (m < total) {
      const int64_t i = m / per_image;
      const int64_t k = (m - i * per_image) * stride;
      const Best b = best_class(src, i, pixel_taps(src, k / src.width, k % src.width), nullptr);
      const uint32_t key = order_key(b.value);
      pool = global_pool ? 0 : b.label;
      const bool kept =
          ranks.rank == nullptr ||
          (ranks.prefix[(i * ranks.tiles_per_image + k / kThreads) * src.classes + b.label] +
           ranks.rank[m]) % u64(ranks.every) == 0;
      if (kept && !kNarrow)
        id = (uint32_t(b.label) << kBucketBits) | (key >> kBucketBits);
      else if (kept && (key >> kBucketBits) == selected[pool])
        id = (uint32_t(b.label) << kBucketBits) | (key & kBucketMask);
    }
    const unsigned group = __match_any_sync(0xffffffffu, id);
    if (id != kNoBucket && lane == __ffs(group) - 1) {
      const unsigned n = __popc(group);
      atomicAdd(&hist[int64_t(pool) * kBuckets + (id & kBucketMask)], u64(n));
      if (!kNarrow) atomicAdd(&counts[id >> kBucketBits], n);
    }
  }
  if (!kNarrow) {
    __syncthreads();
    for (int c = threadIdx.x; c < src.classes; c += blockDim.x)
      if (counts[c] != 0) atomicAdd(&class_counts[c], u64(counts[c]));
  }
}

// Per tile of kThreads consecutive pixels of one image (one block): each pixel's rank among
// the tile's pixels of its class, in raster order, and the tile's count of each class.
// Within a warp the lanes of one class find each other with __match_any_sync; the warps'
// counts go through shared memory.
__global__ void __launch_bounds__(kThreads)
    tile_class_rank_kernel(uint8_t* __restrict__ rank, u64* __restrict__ tile_counts,
                           ScoreSource src, int64_t tiles_per_image) {
  constexpr int kWarps = kThreads / 32;
  __shared__ unsigned int warp_counts[kWarps][256];
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  for (int c = threadIdx.x; c < kWarps * 256; c += blockDim.x) (&warp_counts[0][0])[c] = 0;
  __syncthreads();
  const int64_t tile = blockIdx.x;
  const int64_t i = tile / tiles_per_image;
  const int64_t k = (tile - i * tiles_per_image) * kThreads + threadIdx.x;
  const int64_t pixels = int64_t(src.height) * src.width;
  uint32_t id = kNoBucket;
  if (k < pixels)
    id = uint32_t(best_class(src, i, pixel_taps(src, k / src.width, k % src.width), nullptr).label);
  const unsigned group = __match_any_sync(0xffffffffu, id);
  const unsigned below = group & ((1u << lane) - 1u);
  if (id != kNoBucket && below == 0) warp_counts[warp][id] = __popc(group);
  __syncthreads();
  if (id != kNoBucket) {
    unsigned r = __popc(below);
    for (int w = 0; w < warp; ++w) r += warp_counts[w][id];
    rank[i * pixels + k] = uint8_t(r);  // < kThreads = 256
  }
  for (int c = threadIdx.x; c < src.classes; c += blockDim.x) {
    unsigned n = 0;
    for (int w = 0; w < kWarps; ++w) n += warp_counts[w][c];
    tile_counts[tile * src.classes + c] = n;
  }
}

// Exclusive prefix sums of the tile counts along each image's tiles, one thread per
// (image, class), in place.
__global__ void tile_prefix_kernel(u64* __restrict__ tile_counts, int64_t images,
                                   int64_t tiles_per_image, int classes) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= images * classes) return;
  const int64_t i = j / classes, c = j - i * classes;
  u64 running = 0;
  for (int64_t t = 0; t < tiles_per_image; ++t) {
    u64& v = tile_counts[(i * tiles_per_image + t) * classes + c];
    const u64 n = v;
    v = running;
    running += n;
  }
}

// The authors' spurious zeros: `zeros` entries of value 0.0 in every pool, added to the wide
// histogram, or to the narrow one when the pool's selected bucket is the zero's.
template <bool kNarrow>
__global__ void add_zero_entries_kernel(u64* __restrict__ hist, const uint32_t* __restrict__ selected,
                                        int pools, u64 zeros) {
  const int pool = int(blockIdx.x) * blockDim.x + threadIdx.x;
  if (pool >= pools) return;
  const uint32_t key = order_key(0.0f);
  if (!kNarrow)
    hist[int64_t(pool) * kBuckets + (key >> kBucketBits)] += zeros;
  else if (selected[pool] == (key >> kBucketBits))
    hist[int64_t(pool) * kBuckets + (key & kBucketMask)] += zeros;
}

__device__ void write_threshold(float* thresholds, int pool, int classes, bool global_pool,
                                float value) {
  if (!global_pool) {
    thresholds[pool] = value;
  } else {
    for (int c = 0; c < classes; ++c) thresholds[c] = value;  // ST: one threshold for all
  }
}

// One block per pool. Wide: rank t = ⌊n·p⌋ (n = Σ hist), output the bucket holding the t-th
// largest entry and the rank inside it (or threshold 1.0 when t = 0). Narrow: the digit at
// the stored rank completes the key, whose value is the threshold.
template <bool kNarrow>
__global__ void __launch_bounds__(kSelectThreads)
    select_bucket_kernel(uint32_t* __restrict__ selected, u64* __restrict__ residual,
                         float* __restrict__ thresholds, const u64* __restrict__ hist,
                         double portion, int classes, bool global_pool) {
  using Scan = cub::BlockScan<u64, kSelectThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  const int pool = blockIdx.x;
  if (kNarrow && selected[pool] == kNoBucket) return;  // uniform over the block
  const u64* h = hist + int64_t(pool) * kBuckets;
  // Thread j owns buckets top_j, top_j − 1, …, top_j − 63 in descending order.
  const int64_t top = kBuckets - 1 - int64_t(threadIdx.x) * kBucketsPerThread;
  u64 local = 0;
#pragma unroll 4
  for (int b = 0; b < kBucketsPerThread; ++b) local += h[top - b];
  u64 above = 0, total = 0;
  Scan(scan_storage).ExclusiveSum(local, above, total);
  const u64 rank = kNarrow ? residual[pool] : u64(rank_count(int64_t(total), portion));
  if (rank == 0) {  // wide only: an empty pool or ⌊n·p⌋ = 0
    if (threadIdx.x == 0) {
      selected[pool] = kNoBucket;
      write_threshold(thresholds, pool, classes, global_pool, 1.0f);
    }
    return;
  }
  if (!(above < rank && rank <= above + local)) return;  // exactly one thread goes on
#pragma unroll 1
  for (int b = 0; b < kBucketsPerThread; ++b) {
    const u64 n = h[top - b];
    if (rank <= above + n) {
      const uint32_t digit = uint32_t(top - b);
      if (!kNarrow) {
        selected[pool] = digit;
        residual[pool] = rank - above;
      } else {
        const float v = key_value((selected[pool] << kBucketBits) | digit);
        write_threshold(thresholds, pool, classes, global_pool, usable_threshold(v));
      }
      return;
    }
    above += n;
  }
}

__global__ void __launch_bounds__(kThreads)
    pseudo_labels_kernel(uint8_t* __restrict__ labels, float* __restrict__ confidence,
                         ScoreSource src, int64_t images, const float* __restrict__ thresholds) {
  __shared__ float thr[256];
  for (int c = threadIdx.x; c < src.classes; c += blockDim.x) thr[c] = thresholds[c];
  __syncthreads();
  const int64_t pixels = int64_t(src.height) * src.width;
  const int64_t total = images * pixels;
  for (int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; n < total;
       n += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = n / pixels;
    const int64_t k = n - i * pixels;
    // r_n(c) = s_n(c)/threshold(c); kept iff max_c r ≥ 1 (a pixel at its threshold stays).
    const Best b = best_class(src, i, pixel_taps(src, k / src.width, k % src.width), thr);
    labels[n] = b.value >= 1.0f ? uint8_t(b.label) : kIgnoreLabel;
    if (confidence != nullptr) confidence[n] = b.value;
  }
}

__global__ void __launch_bounds__(kThreads)
    selection_scores_kernel(float* __restrict__ scores, ScoreSource src, int64_t images) {
  const int64_t pixels = int64_t(src.height) * src.width;
  const int64_t total = images * pixels;
  for (int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; n < total;
       n += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = n / pixels;
    const int64_t k = n - i * pixels;
    const PixelTaps t = pixel_taps(src, k / src.width, k % src.width);
    for (int c = 0; c < src.classes; ++c)
      scores[(i * src.classes + c) * pixels + k] = score(src, i, c, t);
  }
}

}  // namespace

void class_thresholds_cuda(float* thresholds, int64_t* pool_sizes, const ScoreSource& src,
                           int64_t images, const PoolParams& params, Device device) {
  const cudaStream_t stream = cuda_stream();
  const int pools = params.global_pool ? 1 : src.classes;
  const int64_t pixels = int64_t(src.height) * src.width;
  const int64_t entries = images * ((pixels + params.pool_stride - 1) / params.pool_stride);

  // Scratch: two histograms (pools × 65536 u64) and the per-pool selection state.
  Tensor hist = Tensor::empty({2, pools, kBuckets}, DType::i64, device);
  Tensor state = Tensor::empty({2, pools}, DType::i64, device);  // selected digit, residual
  u64* wide = reinterpret_cast<u64*>(hist.data<int64_t>());
  u64* narrow = wide + int64_t(pools) * kBuckets;
  uint32_t* selected = reinterpret_cast<uint32_t*>(state.data<int64_t>());
  u64* residual = reinterpret_cast<u64*>(state.data<int64_t>() + pools);
  u64* class_counts = reinterpret_cast<u64*>(pool_sizes);
  CBST_CUDA_CHECK(cudaMemsetAsync(wide, 0, hist.nbytes(), stream));
  CBST_CUDA_CHECK(cudaMemsetAsync(class_counts, 0, sizeof(u64) * src.classes, stream));

  if (!params.authors_sampling) {
    const int blocks = sweep_blocks(entries);
    pool_histogram_kernel<false><<<blocks, kThreads, 0, stream>>>(
        wide, class_counts, nullptr, src, images, params.pool_stride, params.global_pool, {});
    CBST_CUDA_LAUNCH_CHECK();
    select_bucket_kernel<false><<<pools, kSelectThreads, 0, stream>>>(
        selected, residual, thresholds, wide, params.portion, src.classes, params.global_pool);
    CBST_CUDA_LAUNCH_CHECK();
    pool_histogram_kernel<true><<<blocks, kThreads, 0, stream>>>(
        narrow, nullptr, selected, src, images, params.pool_stride, params.global_pool, {});
    CBST_CUDA_LAUNCH_CHECK();
    select_bucket_kernel<true><<<pools, kSelectThreads, 0, stream>>>(
        selected, residual, thresholds, narrow, params.portion, src.classes, params.global_pool);
    CBST_CUDA_LAUNCH_CHECK();
    return;
  }

  // The authors' sampling: per chunk of images (at most ~2^28 pixels, so the rank buffer
  // stays bounded), class ranks by tile, then the histogram sweep over every pixel keeping
  // every K-th of each class. The narrow pass recomputes the ranks rather than keeping them.
  const int64_t tiles_per_image = (pixels + kThreads - 1) / kThreads;
  const int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 28) / std::max<int64_t>(1, pixels));
  const int64_t chunk_images = std::min(images, chunk);
  Tensor rank = Tensor::empty({chunk_images * pixels}, DType::u8, device);
  Tensor prefix = Tensor::empty({chunk_images * tiles_per_image, src.classes}, DType::i64, device);
  u64* prefix_data = reinterpret_cast<u64*>(prefix.data<int64_t>());
  const u64 zeros = u64(authors_zero_entries(params.global_pool, src.classes));
  auto sweep = [&](bool narrow_pass) {
    for (int64_t i0 = 0; i0 < images; i0 += chunk_images) {
      const int64_t n = std::min(chunk_images, images - i0);
      ScoreSource sub = src;
      sub.probs += i0 * src.classes * int64_t(src.h) * src.w;
      tile_class_rank_kernel<<<unsigned(n * tiles_per_image), kThreads, 0, stream>>>(
          rank.data<uint8_t>(), prefix_data, sub, tiles_per_image);
      CBST_CUDA_LAUNCH_CHECK();
      tile_prefix_kernel<<<cuda_blocks(n * src.classes, kThreads), kThreads, 0, stream>>>(
          prefix_data, n, tiles_per_image, src.classes);
      CBST_CUDA_LAUNCH_CHECK();
      const ClassRanks ranks{.rank = rank.data<uint8_t>(), .prefix = prefix_data,
                             .tiles_per_image = tiles_per_image, .every = params.pool_stride};
      if (!narrow_pass)
        pool_histogram_kernel<false><<<sweep_blocks(n * pixels), kThreads, 0, stream>>>(
            wide, class_counts, nullptr, sub, n, 1, params.global_pool, ranks);
      else
        pool_histogram_kernel<true><<<sweep_blocks(n * pixels), kThreads, 0, stream>>>(
            narrow, nullptr, selected, sub, n, 1, params.global_pool, ranks);
      CBST_CUDA_LAUNCH_CHECK();
    }
  };
  sweep(false);
  add_zero_entries_kernel<false><<<1, 256, 0, stream>>>(wide, selected, pools, zeros);
  CBST_CUDA_LAUNCH_CHECK();
  select_bucket_kernel<false><<<pools, kSelectThreads, 0, stream>>>(
      selected, residual, thresholds, wide, params.portion, src.classes, params.global_pool);
  CBST_CUDA_LAUNCH_CHECK();
  sweep(true);
  add_zero_entries_kernel<true><<<1, 256, 0, stream>>>(narrow, selected, pools, zeros);
  CBST_CUDA_LAUNCH_CHECK();
  select_bucket_kernel<true><<<pools, kSelectThreads, 0, stream>>>(
      selected, residual, thresholds, narrow, params.portion, src.classes, params.global_pool);
  CBST_CUDA_LAUNCH_CHECK();
}

void pseudo_labels_cuda(uint8_t* labels, float* confidence, const ScoreSource& src,
                        int64_t images, const float* thresholds) {
  const int64_t total = images * src.height * int64_t(src.width);
  pseudo_labels_kernel<<<sweep_blocks(total), kThreads, 0, cuda_stream()>>>(
      labels, confidence, src, images, thresholds);
  CBST_CUDA_LAUNCH_CHECK();
}

void selection_scores_cuda(float* scores, const ScoreSource& src, int64_t images) {
  const int64_t total = images * src.height * int64_t(src.width);
  selection_scores_kernel<<<sweep_blocks(total), kThreads, 0, cuda_stream()>>>(scores, src,
                                                                               images);
  CBST_CUDA_LAUNCH_CHECK();
}

double device_copy_bandwidth_gbs(int64_t bytes, int repeats, Device device) {
  Tensor a = Tensor::empty({bytes}, DType::u8, device);
  Tensor b = Tensor::empty({bytes}, DType::u8, device);
  const cudaStream_t stream = cuda_stream();
  CBST_CUDA_CHECK(cudaMemsetAsync(a.raw_data(), 1, size_t(bytes), stream));
  CBST_CUDA_CHECK(cudaMemcpyAsync(b.raw_data(), a.raw_data(), size_t(bytes),
                                  cudaMemcpyDeviceToDevice, stream));  // warm-up
  cudaEvent_t start, stop;
  CBST_CUDA_CHECK(cudaEventCreate(&start));
  CBST_CUDA_CHECK(cudaEventCreate(&stop));
  CBST_CUDA_CHECK(cudaEventRecord(start, stream));
  for (int r = 0; r < repeats; ++r)
    CBST_CUDA_CHECK(cudaMemcpyAsync(b.raw_data(), a.raw_data(), size_t(bytes),
                                    cudaMemcpyDeviceToDevice, stream));
  CBST_CUDA_CHECK(cudaEventRecord(stop, stream));
  CBST_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0.0f;
  CBST_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  CBST_CUDA_CHECK(cudaEventDestroy(start));
  CBST_CUDA_CHECK(cudaEventDestroy(stop));
  // A copy reads and writes every byte.
  return 2.0 * double(bytes) * repeats / (double(ms) * 1e-3) / 1e9;
}

}  // namespace cbst::labeling
