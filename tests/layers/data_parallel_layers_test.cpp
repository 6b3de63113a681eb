// The layers' part of data-parallel training: synchronised batch norm and dropout masks of a
// rank's slice of the global batch, each equal to one process running the whole batch.
// Alone, the synchronised batch norm runs against a stand-in for two ranks holding the same
// slice; under `mpiexec -np 2` (ctest label `mpi`) against the real other rank.
#include <gtest/gtest.h>

#include "engine/autograd.h"
#include "engine/dist.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "layers/batch_norm2d.h"
#include "layers/dropout.h"
#include "tests/support/expect_close.h"
#include "tests/support/mpi_environment.h"

namespace cbst {
namespace {

// Two ranks that hold the same data: a sum across them is twice this rank's value. Only for
// tests: no transport, just the arithmetic of a collective.
class TwinRanks final : public dist::Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  int local_rank() const override { return 0; }
  std::string backend() const override { return "twin"; }
  void all_reduce_sum(float* d, int64_t n) override { for (int64_t i = 0; i < n; ++i) d[i] *= 2; }
  void all_reduce_sum(double* d, int64_t n) override { for (int64_t i = 0; i < n; ++i) d[i] *= 2; }
  void all_reduce_sum(int64_t* d, int64_t n) override { for (int64_t i = 0; i < n; ++i) d[i] *= 2; }
  void broadcast(void*, int64_t, int) override {}
  std::vector<uint8_t> all_gather(const void* data, int64_t bytes) override {
    const auto* p = static_cast<const uint8_t*>(data);
    std::vector<uint8_t> v(p, p + bytes);
    v.insert(v.end(), p, p + bytes);
    return v;
  }
  void barrier() override {}
};

struct Split {
  dist::Communicator* comm;
  Tensor full, mine;  // the global batch and this rank's slice of it
  int64_t offset;
};

// A global batch of 2 samples per rank; the real ranks when there are several, else twins.
Split split_batch(TwinRanks& twins, const Shape& per_rank, uint64_t seed) {
  dist::Communicator& w = dist::world();
  Generator gen(seed);
  Shape shape = per_rank;
  if (w.size() > 1) {
    shape[0] *= w.size();
    const Tensor full = add(mul(rand_uniform(shape, -1, 1, DType::f64, Device::cpu(), &gen), 2.0), 0.5);
    return {&w, full, full.narrow(0, w.rank() * per_rank[0], per_rank[0]).contiguous(), w.rank() * per_rank[0]};
  }
  const Tensor mine = add(mul(rand_uniform(shape, -1, 1, DType::f64, Device::cpu(), &gen), 2.0), 0.5);
  return {&twins, concat({mine, mine}, 0), mine, 0};
}

TEST(SyncBatchNorm, ForwardBackwardAndRunningStatisticsEqualTheWholeBatch) {
  TwinRanks twins;
  const Split s = split_batch(twins, {2, 3, 4, 5}, 17);
  const int64_t c = 3, n = s.mine.size(0);
  Generator gen(3);
  const Tensor g0 = rand_uniform({c}, 0.5, 1.5, DType::f64, Device::cpu(), &gen);
  const Tensor b0 = rand_uniform({c}, -0.5, 0.5, DType::f64, Device::cpu(), &gen);
  const Tensor r_full = rand_uniform(s.full.shape(), -1, 1, DType::f64, Device::cpu(), &gen);
  const Tensor r_mine = s.comm == &twins ? r_full.narrow(0, 0, n) : r_full.narrow(0, s.offset, n);

  // The whole batch in one process.
  Tensor x_full = s.full.clone().set_requires_grad(true), g_full = g0.clone().set_requires_grad(true),
         b_full = b0.clone().set_requires_grad(true);
  Tensor rm_full = Tensor::zeros({c}, DType::f64), rv_full = Tensor::ones({c}, DType::f64);
  const Tensor y_full = batch_norm2d(x_full, rm_full, rv_full, g_full, b_full, {.training = true, .momentum = 0.1});
  sum(mul(y_full, s.comm == &twins ? concat({r_mine, r_mine}, 0) : r_full)).backward();

  // This rank's slice, statistics over all ranks.
  Tensor x = s.mine.clone().set_requires_grad(true), g = g0.clone().set_requires_grad(true),
         b = b0.clone().set_requires_grad(true);
  Tensor rm = Tensor::zeros({c}, DType::f64), rv = Tensor::ones({c}, DType::f64);
  const Tensor y = batch_norm2d(x, rm, rv, g, b, {.training = true, .momentum = 0.1, .sync = s.comm});
  sum(mul(y, r_mine)).backward();

  // f64 throughout; the statistics pass through different sums (per rank, then across), so
  // agreement to rounding, far below any real discrepancy.
  CBST_EXPECT_CLOSE("y", y, y_full.narrow(0, s.offset, n), 1e-12, 1e-10);
  CBST_EXPECT_CLOSE("dx", x.grad(), x_full.grad().narrow(0, s.offset, n), 1e-12, 1e-10);
  CBST_EXPECT_CLOSE("running_mean", rm, rm_full, 1e-12, 1e-10);
  CBST_EXPECT_CLOSE("running_var", rv, rv_full, 1e-12, 1e-10);
  // dγ, dβ stay this rank's sums; summed over the ranks they are the whole batch's.
  Tensor dg = g.grad().to(DType::f32), db = b.grad().to(DType::f32);
  dist::all_reduce_sum(*s.comm, dg);
  dist::all_reduce_sum(*s.comm, db);
  CBST_EXPECT_CLOSE("dgamma", dg, g_full.grad().to(DType::f32), 1e-5, 1e-5);  // f32 across ranks
  CBST_EXPECT_CLOSE("dbeta", db, b_full.grad().to(DType::f32), 1e-5, 1e-5);
}

TEST(SyncBatchNorm, ModuleSynchronisesOnlyInTraining) {
  TwinRanks twins;
  BatchNorm2d bn({.num_features = 2});
  sync_batch_norm(bn, &twins);
  Generator gen(1);
  const Tensor x = rand_uniform({1, 2, 3, 3}, -1, 1, DType::f32, Device::cpu(), &gen);
  bn.train();
  const Tensor y_sync = bn.forward(x);
  // Twins hold the same data: the global statistics are this slice's, as are the outputs.
  CBST_EXPECT_CLOSE("train", y_sync, batch_norm2d(x, Tensor(), Tensor(), bn.weight(), bn.bias(), {.training = true}),
                    1e-6, 1e-5);
  EXPECT_EQ(bn.num_batches_tracked().item<int64_t>(), 1);
  bn.eval();
  CBST_EXPECT_CLOSE("eval", bn.forward(x),
                    batch_norm2d(x, bn.running_mean(), bn.running_var(), bn.weight(), bn.bias(), {.training = false}),
                    0.0, 0.0);
}

TEST(DropoutSlices, EachRanksMaskIsItsSliceOfTheWholeBatchsMask) {
  const int ranks = 3;
  const int64_t per_rank = 2;
  Generator data(9);
  const Tensor x = rand_uniform({per_rank * ranks, 4, 3, 5}, 0.5, 1.5, DType::f32, Device::cpu(), &data);
  for (bool channelwise : {false, true}) {
    Generator whole(77);
    whole.set_state(77, 1000);
    const Tensor y = dropout(x, {.p = 0.4, .channelwise = channelwise}, &whole);
    for (int r = 0; r < ranks; ++r) {
      Generator g(77);
      g.set_state(77, 1000);
      g.set_batch_slice(r, ranks);
      const Tensor part = dropout(x.narrow(0, r * per_rank, per_rank).contiguous(),
                                  {.p = 0.4, .channelwise = channelwise}, &g);
      EXPECT_TRUE(testing::identical(part, y.narrow(0, r * per_rank, per_rank).contiguous())) << r;
      EXPECT_EQ(g.offset(), whole.offset());  // every rank's generator ends where the whole batch's does
    }
  }
}

}  // namespace
}  // namespace cbst
