// One parameter server, free of any transport: the mobilenet.ps.v1.ParameterServer
// protocol (Pull, Push, GetStatus, ReportEvaluation, Finish, LeaseData) over its shard of
// the model (parameter_shard.h), its ledger of the cluster (cluster_ledger.h) and, on
// server 0 of an elastic cluster, the data leases (data_leases.h). Every request is
// validated first (request_validation.h); the gRPC service (parameter_service.h) and the
// in-process client (worker/in_process_parameter_client.h) only carry messages to and
// from it, so a whole cluster can run inside one test process.
//
// Also the protocol's rules around the data: exactly-once pushes (a retry with the same
// worker and request id is answered from the ledger), restart detection (a push carries
// the server_incarnation of the pull its gradients came from; another run's is refused),
// the end of training (the chief's Finish, or every member finished), and a consistent
// export and restore of shard and ledger together for checkpoints (core_state.h).
#ifndef MOBILENET_PARAMETER_SERVER_CORE_PARAMETER_SERVER_CORE_H_
#define MOBILENET_PARAMETER_SERVER_CORE_PARAMETER_SERVER_CORE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "mobilenet/ps/v1/parameter_server.pb.h"
#include "parameter_server/core/caller.h"
#include "parameter_server/core/cluster_ledger.h"
#include "parameter_server/core/core_state.h"
#include "parameter_server/core/data_leases.h"
#include "parameter_server/core/duration_histogram.h"
#include "parameter_server/core/parameter_shard.h"
#include "parameter_server/core/request_validation.h"
#include "parameter_server/core/sharding_plan.h"
#include "parameter_server/core/staleness_histogram.h"
#include "parameter_server/core/sync_replicas.h"

namespace mobilenet {

struct CoreOptions {
  int shard_index = 0;  // this server's task in the plan
  int num_workers = 1;  // members of the cluster (--worker_hosts); >= 1
  // --max_workers: elastic workers, with num_workers == max_workers member slots (workers
  // join and leave; server 0 leases them the data, data_leases.h); 0: off (fixed members).
  int max_workers = 0;
  // Identifies this run of the server in pulls (PullResponse.server_incarnation); 0: a
  // random nonzero value (tests may fix it).
  uint64_t incarnation = 0;
  // Push receipts remembered per worker for exactly-once retries; >= 1.
  int remembered_receipts_per_worker = 64;
  // How the transport identifies callers, for Status (e.g. "mutual TLS"), and whether it
  // listens beyond loopback without doing so.
  std::string transport_security = "none (in process)";
  bool insecure = false;
  // --sync_replicas (sync_replicas.h); replicas_to_aggregate at most num_workers. The
  // shard's staleness policy must be kApply (a step's gradients are never stale).
  SyncReplicasConfig sync;
};

// --sync_replicas: what a pull of server 0 tells the caller (PullResponse.sync_step and
// sync_decision, to relay to the other servers).
struct SyncPullInfo {
  int64_t step = 0;
  std::optional<ps::v1::SyncDecision> decision;  // the one that closed step - 1
  // Server 0 is at request.min_sync_step or beyond; otherwise nothing was read (the
  // buffers are untouched) and the caller asks again later. Servers never block a call
  // on other workers.
  bool reached = true;
};

// The distributions of applied pushes, for metrics.
// Entries of StatusResponse.staleness_counts at most (the last one folds the tail).
inline constexpr int kMaxStalenessCounts = 64;

struct PushDistributions {
  StalenessHistogram staleness;
  DurationHistogram apply_time;  // the shard's update alone (bounds: ApplyTimeBounds())
};

// Thread-safe. Pushes are applied one at a time; pulls and status proceed alongside.
class ParameterServerCore {
 public:
  // Server `options.shard_index` of `plan`, with a fresh shard (shard_config's seed,
  // optimizer, schedule with examples_per_epoch the whole training set, staleness policy)
  // and an empty ledger. InvalidArgument for a shard index outside the plan, fewer than
  // one worker, or what ParameterShard::Create refuses.
  static absl::StatusOr<std::unique_ptr<ParameterServerCore>> Create(
      const ShardingPlan& plan, const ParameterShardConfig& shard_config,
      const CoreOptions& options);

  ParameterServerCore(const ParameterServerCore&) = delete;
  ParameterServerCore& operator=(const ParameterServerCore&) = delete;

  const ShardingPlan& plan() const { return plan_; }
  const ServerIdentity& identity() const { return identity_; }
  uint64_t incarnation() const { return identity_.incarnation; }
  const ParameterShard& shard() const { return *shard_; }
  int64_t parameter_count() const { return shard_->parameter_count(); }
  int64_t state_count() const { return shard_->state_count(); }

  // The protocol, for `caller` as the transport identified it (caller.h; the rights are
  // checked by the validation functions). A refused request changes nothing but the
  // refusal counters (and the caller's last-seen time, when it is a member).

  // Copies the weights (their average, when the request asks for it) into `parameters`
  // (parameter_count() floats, float32 whatever request.parameters_dtype asks the transport
  // to send) and, when the request asks for state, the moving statistics into
  // `state` (state_count() floats; otherwise empty: checked); returns the version of exactly those
  // values. A training pull (PullRequest.training) is also the worker's backup under
  // --staleness_policy=dc (ParameterShard::PullForTraining). Errors of ValidatePullRequest.
  // --sync_replicas: server 0 fills `sync` (when not null) with its step and latest
  // decision, and reads nothing when it has not reached request.min_sync_step
  // (sync->reached false); another server first applies request.sync_decision unless it
  // already has.
  absl::StatusOr<int64_t> Pull(const Caller& caller, const ps::v1::PullRequest& request,
                               absl::Span<float> parameters, absl::Span<float> state,
                               SyncPullInfo* sync = nullptr);
  // Applies the push (or answers a retry from the ledger, duplicate = true), corrected with
  // the worker's backup under --staleness_policy=dc. Errors of ValidatePushRequest and of
  // ParameterShard::Apply (ABORTED when too stale). --sync_replicas: keeps the gradients
  // for their step (response.sync_pending); server 0 counts them and closes the step
  // once it has enough; a push for a step server 0 has closed is dropped (ABORTED), one
  // for a step it has not reached yet refused (INVALID_ARGUMENT).
  absl::Status Push(const Caller& caller, const ps::v1::PushRequest& request,
                    ps::v1::PushResponse& response);
  // Every identified caller may read the status.
  ps::v1::StatusResponse GetStatus() const;
  // A copy of the staleness and apply-time distributions of the pushes applied by this
  // run of the server (a few dozen numbers).
  PushDistributions GetPushDistributions() const;
  // Membership events this run of the server recorded, for metrics.
  MembershipEventTotals GetMembershipEventTotals() const {
    return ledger_.membership_event_totals(absl::Now());
  }
  // The apply-time histogram's upper bounds, in seconds.
  static std::vector<double> ApplyTimeBounds();
  absl::Status ReportEvaluation(const Caller& caller, const ps::v1::EvaluationReport& request);
  // Records the worker's Finish; the chief's training_complete, or the last member's
  // Finish, ends the training (finishing() becomes true).
  absl::Status Finish(const Caller& caller, const ps::v1::FinishRequest& request);
  // --max_workers, server 0: leases the caller the next block of the run's data, or says
  // to wait or that the data is done (data_leases.h). Errors of ValidateLeaseRequest;
  // FAILED_PRECONDITION on another server or without elastic workers.
  absl::Status LeaseData(const Caller& caller, const ps::v1::LeaseRequest& request,
                         ps::v1::LeaseResponse& response);
  // Counts a request the transport refused because it could not identify the caller.
  void CountUnauthenticated();

  // The life of the server process around the protocol.

  // Blocks until the training ends (see Finish) or RequestFinish is called.
  void WaitForFinish();
  // As WaitForFinish, but gives up after `timeout`; true when finishing.
  bool WaitForFinishWithTimeout(absl::Duration timeout);
  // Marks the training as over for this process (e.g. on SIGTERM) and wakes the waiters.
  void RequestFinish();
  bool finishing() const;
  // Counts the changes of what a checkpoint holds (applied pushes, finishes,
  // evaluations, restores): while it stays the same, so does ExportState's result.
  int64_t changes() const { return changes_.load(std::memory_order_acquire); }
  // Records the latest checkpoint written (or restored), shown by GetStatus.
  void SetLastCheckpoint(absl::Time time, int64_t step, std::string path);

  // Checkpoints.

  // Shard and ledger as of one moment between pushes; satisfies CheckCoreState.
  CoreState ExportState() const;
  // Replaces shard and ledger with `state`, or changes nothing: errors of CheckCoreState,
  // ParameterShard::RestoreState and ClusterLedger::Restore. Forgets push receipts.
  absl::Status RestoreState(const CoreState& state);

 private:
  ParameterServerCore(const ShardingPlan& plan, ServerIdentity identity,
                      std::unique_ptr<ParameterShard> shard, const CoreOptions& options);

  enum class Refusal { kInvalidPush, kStalePush, kPushFromEarlierRun, kOther };

  // --sync_replicas.
  bool sync_leader() const { return sync_.enabled && identity_.shard_index == 0; }
  // Before a pull's read: server 0 fills `sync` and says whether it reached
  // request.min_sync_step; another server applies request.sync_decision unless it
  // already has (true).
  bool PrepareSyncPull(const ps::v1::PullRequest& request, SyncPullInfo* sync)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(push_mu_);
  absl::Status PushSync(const ValidatedPush& push, absl::Time now, ps::v1::PushResponse& response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(push_mu_);
  // Server 0: closes the open step when it has counted the gradients it needs now;
  // otherwise notes why it waits.
  void TryCloseStep(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(push_mu_);
  // Applies the average of `decision`'s workers' gradients for its step as one update
  // counting all of them (what this server lost of them is left out and the step counted
  // incomplete), and records their pushes.
  void ApplySyncStep(const ps::v1::SyncDecision& decision, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(push_mu_);
  bool elastic() const { return identity_.max_workers > 0; }
  // Server 0 of an elastic cluster: takes back the data blocks of members that are not
  // alive or finished, noting the count in their latest membership event.
  void ReclaimLeasesLocked(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(leases_mu_);

  // Counts a refused request (and a PERMISSION_DENIED one apart) and, for a member whose
  // identity is established, that it was heard from.
  void CountRefusal(Refusal refusal, const absl::Status& status, const Caller& caller,
                    int64_t worker_id);

  const ShardingPlan plan_;
  const ServerIdentity identity_;
  const std::unique_ptr<ParameterShard> shard_;
  ClusterLedger ledger_;
  const absl::Time start_time_;
  const std::string transport_security_;
  const bool insecure_;

  // Held through a push's receipt lookup, apply and record, and by ExportState and
  // RestoreState, so that the shard and the ledger always agree. Acquired before the
  // shard's and the ledger's own locks and before stats_mu_.
  mutable absl::Mutex push_mu_;

  const SyncReplicasConfig sync_;
  SyncGradients sync_gradients_ ABSL_GUARDED_BY(push_mu_);
  // Server 0: the open step, and the gradients counted for it in arrival order; another
  // server: the step after the latest decision it applied. Mirrors the ledger's.
  int64_t sync_step_ ABSL_GUARDED_BY(push_mu_) = 0;
  std::vector<int32_t> sync_counted_ ABSL_GUARDED_BY(push_mu_);
  // The latest decision made (server 0) or applied (the others).
  std::optional<ps::v1::SyncDecision> sync_decision_ ABSL_GUARDED_BY(push_mu_);
  std::vector<float> sync_average_ ABSL_GUARDED_BY(push_mu_);
  std::vector<float> sync_average_stats_ ABSL_GUARDED_BY(push_mu_);
  int sync_needed_ ABSL_GUARDED_BY(push_mu_) = 0;
  std::string sync_waiting_ ABSL_GUARDED_BY(push_mu_);
  int64_t sync_dropped_ ABSL_GUARDED_BY(push_mu_) = 0;
  // Server 0: (worker, examples) of the gradients dropped since the last decision, which
  // the next one names (kMaxDroppedPerDecision at a time).
  std::deque<std::pair<int32_t, int64_t>> sync_dropped_pending_ ABSL_GUARDED_BY(push_mu_);
  int64_t sync_incomplete_ ABSL_GUARDED_BY(push_mu_) = 0;

  // Server 0 with --max_workers: the data leases. Acquired after push_mu_ and before the
  // ledger's own lock. Mutable: members' blocks are taken back when they lapse, which a
  // Status notices too.
  mutable absl::Mutex leases_mu_;
  mutable DataLeases leases_ ABSL_GUARDED_BY(leases_mu_);

  mutable absl::Mutex stats_mu_;
  int64_t pushes_applied_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t pushes_rejected_stale_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t pushes_invalid_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t pushes_duplicate_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t pushes_restarted_ ABSL_GUARDED_BY(stats_mu_) = 0;
  // Mutable: a Status may take back a lapsed member's data blocks, which changes the
  // leases' checkpointed counters.
  mutable std::atomic<int64_t> changes_{0};
  int64_t requests_denied_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t requests_unauthenticated_ ABSL_GUARDED_BY(stats_mu_) = 0;
  StalenessHistogram staleness_ ABSL_GUARDED_BY(stats_mu_);
  DurationHistogram apply_time_ ABSL_GUARDED_BY(stats_mu_){ApplyTimeBounds()};
  int64_t bytes_in_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t bytes_out_ ABSL_GUARDED_BY(stats_mu_) = 0;

  mutable absl::Mutex lifecycle_mu_;
  bool finishing_ ABSL_GUARDED_BY(lifecycle_mu_) = false;
  absl::Time checkpoint_time_ ABSL_GUARDED_BY(lifecycle_mu_) = absl::InfinitePast();
  int64_t checkpoint_step_ ABSL_GUARDED_BY(lifecycle_mu_) = 0;
  std::string checkpoint_path_ ABSL_GUARDED_BY(lifecycle_mu_);
};

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CORE_PARAMETER_SERVER_CORE_H_
