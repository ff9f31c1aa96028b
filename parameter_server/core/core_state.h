// A parameter server's complete restorable state (its shard and its ledger), and the
// invariants every such state satisfies. The same check runs before a checkpoint is
// written and after one is read (shard_checkpointer.h), so whatever a checkpoint can
// hold, a restore accepts, and whatever a restore would refuse, a save never writes.
#ifndef MOBILENET_PARAMETER_SERVER_CORE_CORE_STATE_H_
#define MOBILENET_PARAMETER_SERVER_CORE_CORE_STATE_H_

#include "absl/status/status.h"
#include "model/parameter_layout.h"
#include "parameter_server/core/cluster_ledger.h"
#include "parameter_server/core/parameter_shard.h"

namespace mobilenet {

struct CoreState {
  ShardState shard;
  LedgerState ledger;  // workers empty: a checkpoint that kept no per-worker progress
};

// OK, or InvalidArgument naming the first violation of:
//   - counters: 0 <= version <= examples seen <= version * kMaxExamplesPerPush (every push
//     carries 1 to kMaxExamplesPerPush examples);
//   - values: every tensor value finite (weights, optimizer slots, weight averages
//     "<tensor>/ExponentialMovingAverage", moving statistics); optimizer mean squares
//     ("<tensor>/rms") and the moving variances of `state_layout` never negative;
//   - the ledger (CheckLedgerState for its own number of workers), whose pushes and
//     examples add up to the shard's version and examples seen.
absl::Status CheckCoreState(const CoreState& state, const ParameterLayout& state_layout);

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CORE_CORE_STATE_H_
