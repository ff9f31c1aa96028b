#include "worker/data_shard.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/seeded_random.h"

namespace mobilenet {
namespace {

// Salts that keep the partition and the epoch orders independent streams of one seed.
constexpr uint64_t kPartitionSalt = 0x7061727469746e;  // "partitn"
constexpr uint64_t kEpochSalt = 0x65706f6368;          // "epoch"
constexpr uint64_t kAugmentationSalt = 0x6175676d656e74;  // "augment"

}  // namespace

absl::StatusOr<DataShard> DataShard::Create(int num_examples, int shard_index, int num_shards,
                                            uint64_t seed) {
  if (num_shards < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("data shard: num_shards must be >= 1, got ", num_shards));
  }
  if (shard_index < 0 || shard_index >= num_shards) {
    return absl::InvalidArgumentError(absl::StrCat("data shard: shard index ", shard_index,
                                                   " outside [0, ", num_shards, ")"));
  }
  if (num_examples < num_shards) {
    return absl::InvalidArgumentError(
        absl::StrCat("data shard: ", num_examples, " examples cannot fill ", num_shards,
                     " shards (each needs at least one example)"));
  }
  std::vector<int> permutation(num_examples);
  std::iota(permutation.begin(), permutation.end(), 0);
  SplitMix64 rng(MixSeed(seed, kPartitionSalt));
  Shuffle(&permutation, &rng);
  // Part i is [i * n / N, (i + 1) * n / N): sizes floor(n / N) or ceil(n / N).
  const int64_t begin = static_cast<int64_t>(shard_index) * num_examples / num_shards;
  const int64_t end = static_cast<int64_t>(shard_index + 1) * num_examples / num_shards;
  std::vector<int> members(permutation.begin() + begin, permutation.begin() + end);
  std::sort(members.begin(), members.end());
  return DataShard(num_examples, shard_index, num_shards, seed, std::move(members));
}

DataShard::DataShard(int num_examples, int shard_index, int num_shards, uint64_t seed,
                     std::vector<int> members)
    : num_examples_(num_examples),
      shard_index_(shard_index),
      num_shards_(num_shards),
      seed_(seed),
      members_(std::move(members)) {}

std::vector<int> DataShard::EpochOrder(int64_t epoch) const {
  std::vector<int> order = members_;
  SplitMix64 rng(MixSeed(MixSeed(MixSeed(seed_, kEpochSalt), shard_index_), epoch));
  Shuffle(&order, &rng);
  return order;
}

uint64_t DataShard::AugmentationSeed(int64_t epoch, int index) const {
  return MixSeed(MixSeed(MixSeed(seed_, kAugmentationSalt), epoch), index);
}

}  // namespace mobilenet
