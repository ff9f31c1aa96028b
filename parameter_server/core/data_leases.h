// Elastic workers (--max_workers): server 0 hands the run's training data out in blocks
// (mobilenet.ps.v1.DataPlan: blocks_per_epoch blocks in each of `epochs` epochs) to
// whichever member asks, and takes back the blocks of members that stopped holding them.
//
// A block is named by its global index g = epoch * blocks_per_epoch + block. Blocks are
// leased in order of g: first those taken back (the lowest first), then the first block
// never leased (`next_block`). Every block below next_block is either completed, leased
// to one member, or taken back (waiting to be leased again), so that each block of each
// epoch is trained to completion once, whoever trains it. A member holds at most
// kMaxHeldBlocks blocks at once (the one it trains and one prefetched).
//
// The first lease fixes the plan for the run (checkpoints keep it with next_block and the
// blocks not completed below it, which all wait to be leased again after a restore).
#ifndef MOBILENET_PARAMETER_SERVER_CORE_DATA_LEASES_H_
#define MOBILENET_PARAMETER_SERVER_CORE_DATA_LEASES_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "mobilenet/ps/v1/parameter_server.pb.h"
#include "parameter_server/core/sync_replicas.h"

namespace mobilenet {

// The most blocks one member holds at once.
inline constexpr int kMaxHeldBlocks = 2;
// The most blocks a plan may have (epochs * blocks_per_epoch).
inline constexpr int64_t kMaxDataBlocks = 10'000'000;
// The most examples a plan may have: a worker numbers them with int (DataShard).
inline constexpr int64_t kMaxDataExamples = 2'147'483'647;

// What a checkpoint holds of the leases.
struct DataLeaseState {
  ps::v1::DataPlan plan;
  int64_t next_block = 0;            // the first global index never leased
  std::vector<int64_t> open_blocks;  // below next_block, not completed; ascending
  int64_t blocks_reassigned = 0;
  int64_t late_completions = 0;
};

// InvalidArgument naming `plan` unless it is in range: num_examples in [1,
// kMaxDataExamples], blocks_per_epoch in [1, num_examples], epochs >= 1, at most
// kMaxDataBlocks blocks. The one range rule of the servers' checkpoints and the workers.
absl::Status CheckDataPlan(const ps::v1::DataPlan& plan);

// InvalidArgument naming the first violation of: a plan in range (num_examples >= 1,
// blocks_per_epoch in [1, num_examples], epochs >= 1, at most kMaxDataBlocks blocks);
// 0 <= next_block <= the plan's blocks; open blocks ascending without duplicates, each in
// [0, next_block); counters >= 0.
absl::Status CheckDataLeaseState(const DataLeaseState& state);

// "10 epochs of 600 blocks of 60000 examples (seed 7)", for messages.
std::string DescribeDataPlan(const ps::v1::DataPlan& plan);

// A block taken back from a member, for its membership event.
struct ReturnedBlocks {
  int32_t worker_id = 0;
  int64_t blocks = 0;
};

// Thread-compatible: the caller serializes every call (the core holds a lock).
class DataLeases {
 public:
  DataLeases() = default;

  // Worker `worker_id`'s lease request at `now` (its fields validated by
  // ValidateLeaseRequest): records its `completed` blocks (those it does not hold count as
  // late completions and change nothing else), takes back the blocks leased to it that
  // are in neither list (leasing the first of them to it again right away), and grants it
  // a block, or says to wait (it holds kMaxHeldBlocks, or others hold the rest) or that
  // every block is done. Fills `response`. FailedPrecondition naming both plans when
  // `plan` is not the run's; InvalidArgument for a block outside the plan; nothing
  // changes then.
  absl::Status Lease(int32_t worker_id, const ps::v1::DataPlan& plan,
                     absl::Span<const ps::v1::DataBlock> completed,
                     absl::Span<const ps::v1::DataBlock> held, absl::Time now,
                     ps::v1::LeaseResponse& response);

  // Takes back the blocks of every member of `members` that is not alive (not heard from,
  // or not within `liveness`) or has finished; returns how many each such member had, in
  // id order (members that had none left out).
  std::vector<ReturnedBlocks> Reclaim(absl::Span<const MemberLiveness> members,
                                      absl::Duration liveness);

  // The blocks leased to `worker_id` now.
  int HeldBy(int32_t worker_id) const;
  bool has_plan() const { return plan_.has_value(); }
  int64_t blocks_total() const;
  int64_t blocks_completed() const;

  // Server 0's Status: the plan (if any), progress, who holds what and since when.
  void FillStatus(absl::Time now, ps::v1::DataLeaseStatus& status) const;

  // The checkpointed part; none before the first lease. Satisfies CheckDataLeaseState.
  std::optional<DataLeaseState> Export() const;
  // Replaces everything with `state` (none: no plan yet); its open blocks all wait to be
  // leased again. Errors of CheckDataLeaseState; nothing changes then.
  absl::Status Restore(const std::optional<DataLeaseState>& state);

 private:
  struct Holder {
    int32_t worker_id = 0;
    absl::Time since;
  };

  // Under the fixed plan.
  int64_t GlobalIndex(const ps::v1::DataBlock& block) const;
  ps::v1::DataBlock BlockOf(int64_t global) const;

  std::optional<ps::v1::DataPlan> plan_;
  int64_t next_block_ = 0;
  std::map<int64_t, Holder> leased_;  // by global index
  std::set<int64_t> returned_;        // taken back, leased again lowest first
  int64_t blocks_reassigned_ = 0;
  int64_t late_completions_ = 0;
};

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CORE_DATA_LEASES_H_
