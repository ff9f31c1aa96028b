#include "worker/data_shard.h"

#include <algorithm>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

std::vector<int> Sorted(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(DataShardTest, ShardsAreDisjointCoverEverythingAndDifferByAtMostOne) {
  for (int n : {7, 10, 100, 101, 60000}) {
    for (int num_shards : {1, 2, 3, 7}) {
      std::vector<int> owner(n, -1);
      int smallest = n, largest = 0;
      for (int s = 0; s < num_shards; ++s) {
        absl::StatusOr<DataShard> shard = DataShard::Create(n, s, num_shards, 17);
        ASSERT_TRUE(shard.ok()) << shard.status();
        smallest = std::min(smallest, shard->size());
        largest = std::max(largest, shard->size());
        for (int index : shard->members()) {
          ASSERT_GE(index, 0);
          ASSERT_LT(index, n);
          EXPECT_EQ(owner[index], -1) << "example " << index << " in shards " << owner[index]
                                      << " and " << s;
          owner[index] = s;
        }
      }
      EXPECT_EQ(std::count(owner.begin(), owner.end(), -1), 0) << n << " / " << num_shards;
      EXPECT_LE(largest - smallest, 1) << n << " / " << num_shards;
    }
  }
}

TEST(DataShardTest, EpochOrderIsAPermutationOfTheMembers) {
  absl::StatusOr<DataShard> shard = DataShard::Create(1000, 2, 3, 5);
  ASSERT_TRUE(shard.ok());
  EXPECT_TRUE(std::is_sorted(shard->members().begin(), shard->members().end()));
  for (int epoch = 0; epoch < 3; ++epoch) {
    EXPECT_EQ(Sorted(shard->EpochOrder(epoch)), shard->members());
  }
}

TEST(DataShardTest, OrderIsDeterministicPerSeedAndEpoch) {
  absl::StatusOr<DataShard> a = DataShard::Create(500, 1, 4, 123);
  absl::StatusOr<DataShard> b = DataShard::Create(500, 1, 4, 123);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->members(), b->members());
  EXPECT_EQ(a->EpochOrder(0), b->EpochOrder(0));
  EXPECT_EQ(a->EpochOrder(9), b->EpochOrder(9));
  EXPECT_NE(a->EpochOrder(0), a->EpochOrder(1));
  EXPECT_NE(a->EpochOrder(1), a->EpochOrder(2));
  absl::StatusOr<DataShard> other_seed = DataShard::Create(500, 1, 4, 124);
  ASSERT_TRUE(other_seed.ok());
  EXPECT_NE(a->members(), other_seed->members());
}

TEST(DataShardTest, PartitionIsRandomNotContiguous) {
  // With a data set sorted by label, contiguous parts would each hold a few classes only.
  absl::StatusOr<DataShard> shard = DataShard::Create(1000, 0, 2, 3);
  ASSERT_TRUE(shard.ok());
  const int in_first_half = std::count_if(shard->members().begin(), shard->members().end(),
                                          [](int i) { return i < 500; });
  EXPECT_GT(in_first_half, 200);
  EXPECT_LT(in_first_half, 300);
}

TEST(DataShardTest, WholeIsOneShardOfEverything) {
  absl::StatusOr<DataShard> shard = DataShard::Whole(10, 0);
  ASSERT_TRUE(shard.ok());
  EXPECT_EQ(shard->members(), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(shard->num_shards(), 1);
}

TEST(DataShardTest, RejectsBadArguments) {
  absl::StatusOr<DataShard> shard = DataShard::Create(10, 3, 3, 0);
  ASSERT_FALSE(shard.ok());
  EXPECT_EQ(shard.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(shard.status().message(), HasSubstr("shard index 3 outside [0, 3)"));
  EXPECT_FALSE(DataShard::Create(10, -1, 3, 0).ok());
  EXPECT_THAT(DataShard::Create(10, 0, 0, 0).status().message(),
              HasSubstr("num_shards must be >= 1, got 0"));
  EXPECT_THAT(DataShard::Create(2, 0, 3, 0).status().message(),
              HasSubstr("2 examples cannot fill 3 shards"));
}

}  // namespace
}  // namespace mobilenet
