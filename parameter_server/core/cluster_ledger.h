// Who is in the cluster and what each member has done, as one parameter server knows it:
// membership fixed by the cluster spec (worker ids [0, num_workers); worker 0 is the
// chief), each worker's progress counted from the pushes this server applied (pushes,
// examples) and as the worker reports it (steps, images/s), which workers have finished,
// whether the chief has ended the training, and the chief's latest evaluation.
//
// Everything but the clock times is part of a checkpoint (LedgerState), so a restarted
// server and a restarted worker resume from facts. The ledger also remembers each
// worker's latest push receipts for exactly-once retries; those are not checkpointed (a
// restarted server refuses pushes computed from its earlier run, see
// PullResponse.server_incarnation).
#ifndef MOBILENET_PARAMETER_SERVER_CORE_CLUSTER_LEDGER_H_
#define MOBILENET_PARAMETER_SERVER_CORE_CLUSTER_LEDGER_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "mobilenet/ps/v1/parameter_server.pb.h"
#include "parameter_server/core/data_leases.h"
#include "parameter_server/core/sync_replicas.h"

namespace mobilenet {

// The checkpointed part of one worker's record.
struct WorkerProgress {
  int64_t pushes = 0;          // applied by this server
  int64_t examples = 0;        // in those pushes
  int64_t reported_steps = 0;  // the worker's own step count, as last reported
  bool finished = false;       // sent Finish and has not pushed since
};

// The chief's evaluation of the weights at one global step.
struct Evaluation {
  int64_t global_step = 0;
  int64_t examples = 0;
  int64_t correct = 0;   // 0 <= correct <= examples
  double loss = 0.0;     // finite, >= 0
  double unix_seconds = 0.0;  // when it was reported
  // The same test set on the weight average; average_examples == 0: not evaluated.
  int64_t average_examples = 0;
  int64_t average_correct = 0;  // 0 <= average_correct <= average_examples
  double average_loss = 0.0;    // finite, >= 0
};

// What a checkpoint holds of the ledger.
struct LedgerState {
  std::vector<WorkerProgress> workers;  // one per member, by worker id
  // Applied pushes (and their examples) no member's record holds: from a checkpoint of
  // another cluster size, or one written before per-worker progress was checkpointed.
  int64_t unattributed_pushes = 0;
  int64_t unattributed_examples = 0;
  bool training_complete = false;  // the chief has ended the training
  std::optional<Evaluation> evaluation;
  // The model's class names as the chief reported them (common/class_names.h); empty:
  // not known.
  std::vector<std::string> class_names;
  // --sync_replicas: synchronous steps applied (server 0's step number); >= 0.
  int64_t sync_steps = 0;
  // --max_workers, server 0: its data leases (data_leases.h); none before the first lease
  // or elsewhere. Kept here for checkpoints; the core restores them, not the ledger.
  std::optional<DataLeaseState> data_leases;
};

// Membership events a ledger keeps (the latest; older ones are dropped).
inline constexpr int kMaxMembershipEvents = 64;

// Membership events recorded since the server started, dropped ones included.
struct MembershipEventTotals {
  int64_t joined = 0;
  int64_t left = 0;
  int64_t finished = 0;
};

// What a remembered push answered, repeated for a retry.
struct PushReceipt {
  int64_t version = 0;
  int64_t staleness = 0;
  float learning_rate = 0.0f;
};

// Thread-safe.
class ClusterLedger {
 public:
  // A ledger for workers [0, num_workers) (>= 1), remembering each one's last
  // `remembered_receipts` (>= 1) push receipts; a member not heard from for `liveness`
  // (> 0) has left. All checked.
  ClusterLedger(int num_workers, int remembered_receipts,
                absl::Duration liveness = absl::Seconds(30));

  int num_workers() const { return num_workers_; }
  bool IsMember(int64_t worker_id) const { return worker_id >= 0 && worker_id < num_workers_; }

  // The receipt of member `worker_id`'s push `request_id` if it is still remembered.
  std::optional<PushReceipt> FindReceipt(int32_t worker_id, uint64_t request_id) const;

  // Records a push of member `worker_id` that the shard applied: its receipt (for
  // retries), its examples, and the worker's reported steps and images/s.
  void RecordPush(int32_t worker_id, uint64_t request_id, const PushReceipt& receipt,
                  int64_t examples, int64_t reported_steps, double images_per_sec,
                  absl::Time now);

  // Notes that member `worker_id` was heard from (a JOINED event when it was not present:
  // first heard from, or again after it left or finished).
  void RecordContact(int32_t worker_id, absl::Time now);
  // Notes that member `worker_id`'s share of this run is done (PushRequest.last_of_share)
  // or not (a later push without it: a restarted worker). Not checkpointed.
  void RecordShareDone(int32_t worker_id, bool done);

  // Records member `worker_id`'s Finish (`training_complete` only from the chief; the
  // caller validated it). True when this call ends the training: the chief ended it, or
  // every member has now finished.
  bool RecordFinish(int32_t worker_id, bool training_complete, absl::Time now);

  // Keeps the chief's latest evaluation (validated by the caller).
  void RecordEvaluation(const Evaluation& evaluation);

  // Keeps the chief's class names (validated by the caller; empty: changes nothing).
  // FailedPrecondition naming both lists when other names are already known: one run
  // trains on one label mapping.
  absl::Status RecordClassNames(const std::vector<std::string>& class_names);

  // The checkpointed part, consistent in itself.
  LedgerState Export() const;

  // Replaces the checkpointed part (times and receipts are forgotten). A state of another
  // cluster size cannot be mapped onto these members (workers train other data shards),
  // so all of its progress becomes unattributed. InvalidArgument for a negative count or
  // an impossible evaluation; nothing changes then.
  absl::Status Restore(const LedgerState& state);

  // Totals over members and unattributed progress: what the shard's version and examples
  // seen must equal.
  int64_t total_pushes() const;
  int64_t total_examples() const;

  // Synchronous steps applied, as kept by SetSyncSteps (and checkpoints).
  int64_t sync_steps() const;
  void SetSyncSteps(int64_t steps);

  // Each member's liveness and whether it finished, in id order (sync_replicas.h). Notes
  // departures first (see NoteDepartures).
  std::vector<MemberLiveness> Liveness(absl::Time now) const;

  // Records a LEFT event (at its last contact plus the liveness) for each present member
  // not heard from within the liveness by `now`. Departures are noticed lazily: by this,
  // Liveness and FillStatus.
  void NoteDepartures(absl::Time now) const;
  // Sets the detail of member `worker_id`'s latest event (e.g. "2 data blocks returned");
  // nothing when it has none among those kept.
  void SetLatestEventDetail(int32_t worker_id, const std::string& detail) const;
  // The membership events kept, oldest first (at most kMaxMembershipEvents). Not
  // checkpointed.
  std::vector<ps::v1::MembershipEvent> MembershipEvents() const;
  // Notes departures first, like MembershipEvents.
  MembershipEventTotals membership_event_totals(absl::Time now) const;

  // Adds one WorkerStatus per member (in id order), the membership events and the
  // ledger's fields to `status`.
  void FillStatus(absl::Time now, ps::v1::StatusResponse& status) const;

 private:
  struct Member {
    WorkerProgress progress;
    double images_per_sec = 0.0;
    absl::Time last_seen = absl::InfinitePast();  // InfinitePast: not since this start
    absl::Time last_push = absl::InfinitePast();
    bool share_done = false;
    std::deque<uint64_t> receipt_order;  // oldest first
    absl::flat_hash_map<uint64_t, PushReceipt> receipts;
  };

  void RecordEventLocked(absl::Time when, int32_t worker_id,
                         ps::v1::MembershipEvent::Kind kind) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NoteDeparturesLocked(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks `member` heard from at `now`, joining when it was not present.
  void SeenLocked(int32_t worker_id, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int num_workers_;
  const int remembered_receipts_;
  const absl::Duration liveness_;

  mutable absl::Mutex mu_;
  std::vector<Member> members_ ABSL_GUARDED_BY(mu_);
  // Per member: joined and has neither left nor finished since. Mutable, like the events:
  // a departure comes with the clock alone and is noticed when read.
  mutable std::vector<bool> present_ ABSL_GUARDED_BY(mu_);
  mutable std::deque<ps::v1::MembershipEvent> events_ ABSL_GUARDED_BY(mu_);
  mutable MembershipEventTotals event_totals_ ABSL_GUARDED_BY(mu_);
  int64_t unattributed_pushes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t unattributed_examples_ ABSL_GUARDED_BY(mu_) = 0;
  bool training_complete_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<Evaluation> evaluation_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> class_names_ ABSL_GUARDED_BY(mu_);
  int64_t sync_steps_ ABSL_GUARDED_BY(mu_) = 0;
};

// InvalidArgument naming the first impossible value of `state` for a cluster of
// `num_workers`: not one record per member, a negative counter, or an evaluation with
// correct outside [0, examples] or a loss that is negative or not finite (of the weights
// or of their average), or class names CheckClassNames refuses (of any count: the ledger
// does not know the model).
absl::Status CheckLedgerState(const LedgerState& state, int num_workers);

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CORE_CLUSTER_LEDGER_H_
