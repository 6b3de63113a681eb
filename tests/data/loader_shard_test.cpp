// Sharded loading for data-parallel training: the ranks' slices of each global batch are
// exactly that batch of one unsharded loader with the global batch size (samples, order and
// augmentation), whatever the worker count.
#include <gtest/gtest.h>

#include "data/loader.h"
#include "engine/check.h"
#include "engine/ops.h"
#include "tests/data/data_test_util.h"

using namespace cbst::data;
namespace tu = cbst::data::test_util;

namespace {

LoaderOptions options(int batch, int shard, int shards, int workers) {
  return {.batch_size = batch, .workers = workers, .shard_index = shard, .shard_count = shards, .seed = 5,
          .augment_params = {.crop_width = 24, .crop_height = 16}};
}

}  // namespace

TEST(LoaderShards, SlicesOfEachGlobalBatchEqualTheUnshardedBatch) {
  tu::TempDir d;
  const Dataset ds = open_gta5(tu::write_gta_tree(d, 11));
  const int per_rank = 2, ranks = 3;  // global batch 6: one batch per epoch (drop_last), 5 left out
  Loader whole(ds, options(per_rank * ranks, 0, 1, 2));
  std::vector<std::unique_ptr<Loader>> shards;
  for (int r = 0; r < ranks; ++r) shards.push_back(std::make_unique<Loader>(ds, options(per_rank, r, ranks, r)));
  for (int64_t epoch : {0, 3}) {
    whole.start_epoch(epoch);
    for (auto& s : shards) s->start_epoch(epoch);
    int64_t batches = 0;
    while (auto b = whole.next()) {
      ++batches;
      for (int r = 0; r < ranks; ++r) {
        auto part = shards[size_t(r)]->next();
        ASSERT_TRUE(part.has_value());
        EXPECT_EQ(part->indices, std::vector<int64_t>(b->indices.begin() + r * per_rank,
                                                      b->indices.begin() + (r + 1) * per_rank));
        EXPECT_EQ(part->images.to_vector<float>(), b->images.narrow(0, r * per_rank, per_rank).to_vector<float>());
        EXPECT_EQ(part->labels.to_vector<uint8_t>(), b->labels.narrow(0, r * per_rank, per_rank).to_vector<uint8_t>());
      }
    }
    EXPECT_EQ(batches, 1);
    for (auto& s : shards) {
      EXPECT_EQ(s->batches_per_epoch(), whole.batches_per_epoch());
      EXPECT_FALSE(s->next().has_value());
    }
  }
}

TEST(LoaderShards, ShardingNeedsDropLastAndAValidShard) {
  tu::TempDir d;
  const Dataset ds = open_gta5(tu::write_gta_tree(d, 2));
  LoaderOptions o = options(1, 0, 2, 0);
  o.drop_last = false;
  EXPECT_THROW(Loader(ds, o), cbst::Error);
  EXPECT_THROW(Loader(ds, options(1, 2, 2, 0)), cbst::Error);
}
