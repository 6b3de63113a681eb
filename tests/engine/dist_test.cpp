// The communicator (engine/dist.h) and the gradient buckets. Every test holds on any number
// of ranks: alone (a plain ctest run, the single-process backend) and under
// `mpiexec -np 2` (ctest label `mpi`, the MPI backend), where the values differ per rank and
// the expected sums are computed from the rank count.
#include "engine/dist.h"

#include <gtest/gtest.h>

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

TEST(GradientBuckets, PacksParametersInOrderUpToTheBucketSize) {
  std::vector<Tensor> params = {Tensor::zeros({10}), Tensor::zeros({4, 5}), Tensor::zeros({1000}), Tensor::zeros({5})};
  // 30 floats per bucket: {10, 20} share one; 1000 is alone (larger than a bucket); 5 starts
  // a new one, since 1000 + 5 would overflow.
  const dist::GradientBuckets buckets(params, 30 * int64_t(sizeof(float)));
  ASSERT_EQ(buckets.buckets().size(), 3u);
  EXPECT_EQ(buckets.buckets()[0].params, (std::vector<size_t>{0, 1}));
  EXPECT_EQ(buckets.buckets()[0].numel, 30);
  EXPECT_EQ(buckets.buckets()[1].params, (std::vector<size_t>{2}));
  EXPECT_EQ(buckets.buckets()[1].numel, 1000);
  EXPECT_EQ(buckets.buckets()[2].params, (std::vector<size_t>{3}));
  EXPECT_EQ(buckets.buckets()[2].flat.numel(), 5);
  EXPECT_THROW(dist::GradientBuckets({Tensor::zeros({3}, DType::f64)}), Error);
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
  dist::GradientBuckets buckets(params, 8 * int64_t(sizeof(float)));
  EXPECT_EQ(buckets.buckets().size(), 2u);  // {3, 4}, {7, 1}
  const double scale = 1.0 / n;
  buckets.all_reduce(comm, scale);
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

}  // namespace
}  // namespace cbst
