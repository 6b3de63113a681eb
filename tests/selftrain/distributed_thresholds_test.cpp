// Thresholds of a target set split across ranks (two histogram passes, summed) against
// class_thresholds on the whole set: bit for bit, every case of the brute-force table, both
// pool samplings. Alone this checks the histogram selection against std::nth_element; under
// `mpiexec -np 2` (ctest label `mpi`) each rank holds only its share of the images.
#include "selftrain/distributed_thresholds.h"

#include <gtest/gtest.h>

#include "engine/dist.h"
#include "tests/selftrain/labeling_cases.h"
#include "tests/support/mpi_environment.h"

namespace cbst {
namespace {

using testing::LabelingCase;

class DistributedThresholds : public ::testing::TestWithParam<LabelingCase> {};

// This rank's contiguous share of the images, as the round's pseudo-labelling splits them.
Tensor share(const Tensor& probs, const dist::Communicator& comm) {
  const int64_t n = probs.size(0);
  const int64_t first = n * comm.rank() / comm.size(), last = n * (comm.rank() + 1) / comm.size();
  return probs.narrow(0, first, last - first).contiguous();
}

TEST_P(DistributedThresholds, EqualTheWholeSetsThresholdsBitForBit) {
  dist::Communicator& comm = dist::world();
  LabelingCase c = GetParam();
  c.images += 3;  // shares of unequal size on two ranks
  const testing::LabelingProblem p = testing::make_problem(c);
  for (const ThresholdParams& params :
       {testing::threshold_params(c), testing::authors_threshold_params(c, 4),
        testing::authors_threshold_params(c, c.pool_stride)}) {
    const ClassThresholds want = class_thresholds(p.probs, p.prior, params);
    const ClassThresholds got = distributed_class_thresholds(share(p.probs, comm), p.prior, params, comm);
    EXPECT_EQ(got.thresholds.to_vector<float>(), want.thresholds.to_vector<float>())
        << pool_sampling_name(params.sampling) << " K = " << params.pool_stride;
    EXPECT_EQ(got.pool_sizes.to_vector<int64_t>(), want.pool_sizes.to_vector<int64_t>())
        << pool_sampling_name(params.sampling) << " K = " << params.pool_stride;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, DistributedThresholds, ::testing::ValuesIn(testing::labeling_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(AllGatherImages, ConcatenatesTheSharesInRankOrder) {
  dist::Communicator& comm = dist::world();
  const testing::LabelingProblem p = testing::make_problem({"gather", 5, 3, 4, 6, 4, 6});
  const Tensor all = all_gather_images(share(p.probs, comm), comm);
  EXPECT_EQ(all.shape(), p.probs.shape());
  EXPECT_EQ(all.to_vector<float>(), p.probs.to_vector<float>());
}

}  // namespace
}  // namespace cbst
