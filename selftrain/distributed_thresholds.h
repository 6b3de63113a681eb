// Pseudo-labelling split across data-parallel ranks (engine/dist.h): each rank holds the
// probabilities of its share of the target images, and the thresholds must be bit-identical
// to class_thresholds on the whole set (DESIGN §10).
//
// Exact merge by two histogram passes over the pools' order keys (labeling_math.h: an
// unsigned total order on the confidences), summed across ranks:
//   pass 1  per pool, a 2¹⁶-bucket histogram of the keys' high 16 bits, summed across ranks
//           (with the pool sizes, and the authors' zeros added once); from the top, the
//           bucket that holds the t-th largest entry, t = ⌊n·p⌋ of the global pool size n;
//   pass 2  within that bucket, a histogram of the low 16 bits, summed; the exact key.
// The t-th largest key is the t-th largest value that a sort of the merged pool gives, so
// the threshold is the same float. Each rank sends 2 × pools × 2¹⁶ counts (10 MiB for 19
// classes), whatever the data size; the pools themselves never leave their rank.
#pragma once

#include "engine/dist.h"
#include "selftrain/pseudo_labels.h"

namespace cbst {

// local_probs: f32 (N_r, C, h, w), this rank's images (any device; the pools are built on the
// CPU, which gives the keys the CUDA kernels give); spatial_prior as class_thresholds. Every
// rank calls it with the same params; it returns the thresholds and global pool sizes of the
// whole set on every rank, on the device of local_probs.
ClassThresholds distributed_class_thresholds(const Tensor& local_probs, const Tensor& spatial_prior,
                                             const ThresholdParams& params, dist::Communicator& comm);

// Every rank's (N_r, C, h, w) f32 tensor concatenated along dim 0 in rank order, on the CPU.
Tensor all_gather_images(const Tensor& local, dist::Communicator& comm);

}  // namespace cbst
