// Which examples of a data set one worker trains on, and in which order each epoch.
//
// Scheme: a fixed partition, then a per-epoch shuffle inside each shard. A permutation of
// [0, num_examples) drawn from `seed` (the same on every worker) is cut into num_shards
// contiguous parts whose sizes differ by at most one; shard i owns part i for the whole
// run, so the shards are disjoint and together cover the data set, and a worker only
// ever reads its own examples. The random (not contiguous) partition keeps the classes
// balanced across shards even if the files are sorted by label. Every epoch, a shard
// visits its examples in a new order drawn from (seed, shard_index, epoch).
#ifndef MOBILENET_WORKER_DATA_SHARD_H_
#define MOBILENET_WORKER_DATA_SHARD_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace mobilenet {

// Immutable; thread-safe.
class DataShard {
 public:
  // Shard `shard_index` of `num_shards` over a data set of `num_examples`. All workers of
  // one run must pass the same num_examples, num_shards and seed. InvalidArgument if
  // num_shards < 1, shard_index is outside [0, num_shards) or the shard would be empty
  // (num_examples < num_shards).
  static absl::StatusOr<DataShard> Create(int num_examples, int shard_index, int num_shards,
                                          uint64_t seed);

  // The whole data set as one shard (a single worker).
  static absl::StatusOr<DataShard> Whole(int num_examples, uint64_t seed) {
    return Create(num_examples, 0, 1, seed);
  }

  int size() const { return static_cast<int>(members_.size()); }
  int shard_index() const { return shard_index_; }
  int num_shards() const { return num_shards_; }
  int num_examples() const { return num_examples_; }
  uint64_t seed() const { return seed_; }

  // The data-set indices this shard owns, ascending.
  const std::vector<int>& members() const { return members_; }

  // This shard's examples (data-set indices) in the order of epoch `epoch` (>= 0): a
  // permutation of members(), the same for the same (seed, shard, epoch).
  std::vector<int> EpochOrder(int64_t epoch) const;

  // The seed of the random augmentation of data-set example `index` in epoch `epoch`: a
  // function of (seed, epoch, index) only, so every reader of the shard (whatever its
  // batch size or threads) augments an example the same way.
  uint64_t AugmentationSeed(int64_t epoch, int index) const;

 private:
  DataShard(int num_examples, int shard_index, int num_shards, uint64_t seed,
            std::vector<int> members);

  int num_examples_;
  int shard_index_;
  int num_shards_;
  uint64_t seed_;
  std::vector<int> members_;
};

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_DATA_SHARD_H_
