// The communicator (engine/dist.h) and the gradient buckets. Every test holds on any number
// of ranks: alone (a plain ctest run, the single-process backend) and under
// `mpiexec -np 2` (ctest label `mpi`, the MPI backend), where the values differ per rank and
// the expected sums are computed from the rank count.
#include "engine/dist.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "engine/autograd.h"
#include "engine/cuda_context.h"
#include "engine/ops.h"
#include "tests/support/expect_close.h"
#include "tests/support/mpi_environment.h"

namespace cbst {
namespace {

using dist::world;

TEST(Dist, LaunchDecidesTheBackend) {
  dist::Communicator& comm = world();
  EXPECT_GE(comm.rank(), 0);
  EXPECT_LT(comm.rank(), comm.size());
  EXPECT_GE(comm.local_rank(), 0);
  if (dist::launched_by_mpi_launcher() && dist::mpi_built()) {
    EXPECT_NE(comm.backend().find("mpi"), std::string::npos) << comm.backend();
  } else {
    EXPECT_EQ(comm.backend(), "single");
    EXPECT_EQ(comm.size(), 1);
  }
}

TEST(Dist, AllReduceSumsEveryRanksValuesInEachType) {
  dist::Communicator& comm = world();
  const int r = comm.rank(), n = comm.size();
  // Σ_r (r + 1)·k over ranks = k·n(n+1)/2: small integers, exact in every type.
  const double ranks_sum = double(n) * (n + 1) / 2;
  std::vector<float> f = {float(r + 1), 2.0f * float(r + 1), -3.0f * float(r + 1)};
  std::vector<double> d = {double(r + 1) * 0.5, 1e12 * double(r + 1)};
  std::vector<int64_t> i = {int64_t(r + 1) << 40, -int64_t(r + 1)};
  comm.all_reduce_sum(f.data(), int64_t(f.size()));
  comm.all_reduce_sum(d.data(), int64_t(d.size()));
  comm.all_reduce_sum(i.data(), int64_t(i.size()));
  EXPECT_EQ(f, (std::vector<float>{float(ranks_sum), float(2 * ranks_sum), float(-3 * ranks_sum)}));
  EXPECT_EQ(d, (std::vector<double>{0.5 * ranks_sum, 1e12 * ranks_sum}));
  EXPECT_EQ(i, (std::vector<int64_t>{int64_t(ranks_sum) << 40, -int64_t(ranks_sum)}));
}

TEST(Dist, BroadcastCopiesTheRootsBytesToEveryRank) {
  dist::Communicator& comm = world();
  const int root = comm.size() - 1;
  std::vector<uint8_t> bytes(1000, uint8_t(comm.rank()));
  comm.broadcast(bytes.data(), int64_t(bytes.size()), root);
  EXPECT_EQ(bytes, std::vector<uint8_t>(1000, uint8_t(root)));
}

TEST(Dist, AllGatherConcatenatesUnequalPartsInRankOrder) {
  dist::Communicator& comm = world();
  // Rank r contributes r + 1 bytes of value r (rank 0 one byte).
  const std::vector<uint8_t> mine(size_t(comm.rank() + 1), uint8_t(comm.rank()));
  const std::vector<uint8_t> all = comm.all_gather(mine.data(), int64_t(mine.size()));
  std::vector<uint8_t> want;
  for (int r = 0; r < comm.size(); ++r) want.insert(want.end(), size_t(r + 1), uint8_t(r));
  EXPECT_EQ(all, want);
  comm.barrier();
}

TEST(Dist, TensorAllReduceAndBroadcastActInPlace) {
  dist::Communicator& comm = world();
  const Tensor t = Tensor::full({2, 3}, double(comm.rank() + 1));
  dist::all_reduce_sum(comm, t);
  const double ranks_sum = double(comm.size()) * (comm.size() + 1) / 2;
  EXPECT_TRUE(testing::identical(t, Tensor::full({2, 3}, ranks_sum)));
  const Tensor b = Tensor::full({4}, double(comm.rank()), DType::i64);
  dist::broadcast(comm, b, 0);
  EXPECT_TRUE(testing::identical(b, Tensor::zeros({4}, DType::i64)));
  EXPECT_THROW(dist::all_reduce_sum(comm, Tensor::zeros({2}, DType::f64)), Error);
}

TEST(GradientBuckets, PacksParametersFromTheLastUpToTheBucketSize) {
  dist::Communicator& comm = world();
  std::vector<Tensor> params = {Tensor::zeros({10}), Tensor::zeros({4, 5}), Tensor::zeros({1000}), Tensor::zeros({6}),
                                Tensor::zeros({3})};
  // Filled from the last parameter (backward makes it final first): 8 floats in the first
  // bucket, so 3 is alone there (3 + 6 would overflow it), then 30 per bucket: 6 starts one,
  // 1000 is alone (larger than a bucket), then {20, 10} share one.
  const dist::GradientBuckets buckets(comm, params, {.first_bucket_bytes = 8 * 4, .bucket_bytes = 30 * 4});
  ASSERT_EQ(buckets.buckets().size(), 4u);
  EXPECT_EQ(buckets.buckets()[0].params, (std::vector<size_t>{4}));
  EXPECT_EQ(buckets.buckets()[0].flat.numel(), 3);
  EXPECT_EQ(buckets.buckets()[1].params, (std::vector<size_t>{3}));
  EXPECT_EQ(buckets.buckets()[2].params, (std::vector<size_t>{2}));
  EXPECT_EQ(buckets.buckets()[2].numel, 1000);
  EXPECT_EQ(buckets.buckets()[3].params, (std::vector<size_t>{1, 0}));
  EXPECT_EQ(buckets.buckets()[3].numel, 30);
  EXPECT_THROW(dist::GradientBuckets(comm, {Tensor::zeros({3}, DType::f64)}), Error);
}

TEST(GradientBuckets, SumGradientsAcrossRanksAndScaleThem) {
  dist::Communicator& comm = world();
  const int r = comm.rank(), n = comm.size();
  std::vector<Tensor> params;
  for (Shape s : {Shape{3}, Shape{2, 2}, Shape{7}, Shape{1}}) {
    Tensor p = Tensor::zeros(s);
    p.set_requires_grad(true);
    params.push_back(p);
  }
  // Gradient element k of parameter j on rank r: (r + 1)·(j + 1 + k); parameter 3 has no
  // gradient on any rank (it joins with zeros).
  for (size_t j = 0; j < 3; ++j) {
    const Tensor k = Tensor::arange(params[j].numel()).reshape(params[j].shape());
    params[j].set_grad(mul(add(k, double(j + 1)), double(r + 1)));
  }
  dist::GradientBuckets buckets(comm, params, {.first_bucket_bytes = 8 * 4, .bucket_bytes = 8 * 4});
  EXPECT_EQ(buckets.buckets().size(), 2u);  // {1, 7}, {4, 3}
  const double scale = 1.0 / n;
  buckets.finish(scale);
  const double ranks_sum = double(n) * (n + 1) / 2;
  for (size_t j = 0; j < 3; ++j) {
    const Tensor k = Tensor::arange(params[j].numel()).reshape(params[j].shape());
    CBST_EXPECT_CLOSE("grad " + std::to_string(j), params[j].grad(), mul(add(k, double(j + 1)), ranks_sum * scale),
                      0.0, 1e-6);  // float sums of small integers, then one scaling
  }
  // Alone, nothing is exchanged (a no-op: scale 1/1); with other ranks it takes part as zeros.
  if (n > 1) {
    ASSERT_TRUE(params[3].grad().defined());
    EXPECT_TRUE(testing::identical(params[3].grad(), Tensor::zeros({1})));
  } else {
    EXPECT_FALSE(params[3].grad().defined());
  }
}

// CUDA tensors across ranks: through NCCL when cbst was built with it and the process was
// started by an MPI launcher (ctest's Mpi.engine_dist_test_cuda_on_1_rank on a GPU host runs
// NCCL's whole path on one rank: bootstrap, streams, events), staged through host memory by
// MPI without NCCL, nothing to exchange alone. NCCL takes one GPU per rank: more ranks than
// GPUs skip.
TEST(DistCuda, DeviceTensorsSumBroadcastAndFillGradientBuckets) {
  CBST_REQUIRE_CUDA();
  dist::Communicator& comm = world();
  const int r = comm.rank(), n = comm.size();
  // Each rank takes the GPU of its local rank; all skip together if any lacks one (a rank
  // alone in a collective would wait for ever).
  std::vector<int64_t> without_gpu = {comm.local_rank() >= cuda_device_count() ? 1 : 0};
  comm.all_reduce_sum(without_gpu.data(), 1);
  if (without_gpu[0] > 0)
    GTEST_SKIP() << without_gpu[0] << " rank(s) without a GPU of their own: NCCL takes one GPU per rank";
  const Device d = Device::cuda(comm.local_rank());
  if (dist::launched_by_mpi_launcher() && dist::nccl_built()) {
    EXPECT_EQ(comm.backend(), "mpi+nccl");
  }
  const double ranks_sum = double(n) * (n + 1) / 2;
  // Written by kernels on the engine's stream just before the collective, which must wait for
  // them; 2^20 floats, integers below 2^24, so every sum is exact.
  const int64_t count = int64_t(1) << 20;
  const Tensor t = mul(Tensor::arange(count, DType::f32, d), double(r + 1));
  dist::all_reduce_sum(comm, t);
  CBST_EXPECT_CLOSE("all-reduce", t, mul(Tensor::arange(count), ranks_sum), 0.0, 0.0);
  const Tensor b = Tensor::full({1000}, double(r + 7), DType::f32, d);
  dist::broadcast(comm, b, n - 1);
  CBST_EXPECT_CLOSE("broadcast", b, Tensor::full({1000}, double(n - 1 + 7)), 0.0, 0.0);

  // Gradient buckets of parameters on the GPU, overlapped and not: element k of parameter j's
  // gradient on rank r is (r + 1)·(j + 1 + k).
  for (bool overlap : {false, true}) {
    std::vector<Tensor> params;
    for (Shape s : {Shape{3000}, Shape{20, 20}, Shape{70000}}) {
      Tensor p = Tensor::zeros(s, DType::f32, d);
      p.set_requires_grad(true);
      params.push_back(p);
    }
    dist::GradientBuckets buckets(comm, params,
                                  {.first_bucket_bytes = 1000 * 4, .bucket_bytes = 50000 * 4, .overlap = overlap});
    for (size_t j = 0; j < params.size(); ++j) {
      const Tensor k = Tensor::arange(params[j].numel(), DType::f32, d).reshape(params[j].shape());
      params[j].set_grad(mul(add(k, double(j + 1)), double(r + 1)));
    }
    buckets.finish(1.0);
    for (size_t j = 0; j < params.size(); ++j) {
      const Tensor k = Tensor::arange(params[j].numel()).reshape(params[j].shape());
      CBST_EXPECT_CLOSE("bucketed gradient " + std::to_string(j) + (overlap ? ", overlapped" : ""), params[j].grad(),
                        mul(add(k, double(j + 1)), ranks_sum), 0.0, 0.0);
    }
  }
}

// The same bits, not only equal values.
::testing::AssertionResult same_bits(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.contiguous().to_vector<float>(), y = b.contiguous().to_vector<float>();
  if (x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << testing::identical(a, b).message();
}

// Parameters of one replica: four of 64 values; parameter 0 gets no gradient (it is not in
// the loss), parameter 1 is used twice.
std::vector<Tensor> replica() {
  std::vector<Tensor> params;
  for (int j = 0; j < 4; ++j) {
    std::vector<float> v(64);
    for (size_t k = 0; k < v.size(); ++k) v[k] = float(std::sin(0.37 * double(k + 1) * (j + 1)));
    params.push_back(Tensor::from_vector<float>(v, {64}).set_requires_grad(true));
  }
  return params;
}

// A step's loss on this rank: inputs differ per rank and step, so the per-rank gradients are
// floats whose sums round.
Tensor loss_of(const std::vector<Tensor>& p, int rank, int step) {
  std::vector<float> v(64);
  for (size_t k = 0; k < v.size(); ++k) v[k] = float(std::cos(0.91 * double(k + 3) * (rank + 1) + step));
  const Tensor x = Tensor::from_vector<float>(v, {64});
  const Tensor h = mul(relu(add(mul(x, p[1]), p[2])), p[3]);
  const Tensor c = add(mul(h, p[1]), x);
  return sum(mul(c, c));
}

TEST(GradientBuckets, OverlappedAllReduceGivesTheBitsOfTheOneAfterBackward) {
  dist::Communicator& comm = world();
  const int n = comm.size();
  const double scale = 1.0 / n;
  // 100 floats per bucket: one bucket per parameter, [3], [2], [1], [0]; the last holds
  // the parameter without a gradient, so it can only be launched by finish().
  const int64_t bucket_bytes = 100 * 4;
  std::vector<Tensor> overlapped = replica(), after = replica();
  dist::GradientBuckets overlapping(comm, overlapped,
                                    {.first_bucket_bytes = bucket_bytes, .bucket_bytes = bucket_bytes, .overlap = true});
  dist::GradientBuckets plain(comm, after,
                              {.first_bucket_bytes = bucket_bytes, .bucket_bytes = bucket_bytes, .overlap = false});
  for (int step = 0; step < 2; ++step) {  // the second step reuses the buckets and the gradient buffers
    for (Tensor& p : overlapped) p.zero_grad();
    for (Tensor& p : after) p.zero_grad();
    loss_of(overlapped, comm.rank(), step).backward();
    loss_of(after, comm.rank(), step).backward();
    // Several ranks: during backward, the hooks launched the buckets of parameters 3, 2, 1.
    EXPECT_EQ(overlapping.launched(), n > 1 ? 3u : 0u);
    EXPECT_EQ(plain.launched(), 0u);
    std::vector<Tensor> local;  // this rank's gradients (for step 0, parameter 0 has none)
    for (const Tensor& p : after) local.push_back(p.grad().defined() ? p.grad().clone() : Tensor::zeros({64}));
    overlapping.finish(scale);
    plain.finish(scale);
    for (size_t j = 0; j < overlapped.size(); ++j) {
      if (n == 1 && j == 0) {  // alone, nothing fills in the missing gradient
        EXPECT_FALSE(overlapped[j].grad().defined());
        continue;
      }
      EXPECT_TRUE(same_bits(overlapped[j].grad(), after[j].grad())) << "parameter " << j << ", step " << step;
      // Against one blocking all-reduce per gradient: on 2 ranks each element is one sum of two
      // floats, which every reduction order computes alike.
      if (n <= 2) {
        dist::all_reduce_sum(comm, local[j]);
        EXPECT_TRUE(same_bits(overlapped[j].grad(), mul(local[j], scale))) << "parameter " << j << ", step " << step;
      }
    }
    EXPECT_EQ(overlapping.launched(), 0u);
  }
  // A second backward before finish() is refused (its gradients would miss the sum).
  if (n > 1) {
    loss_of(overlapped, comm.rank(), 2).backward();
    EXPECT_THROW(loss_of(overlapped, comm.rank(), 3).backward(), Error);
    overlapping.finish(scale);
  }
}

}  // namespace
}  // namespace cbst
