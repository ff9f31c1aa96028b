// Synchronous training with backup workers (--sync_replicas; Chen et al., 2016,
// "Revisiting Distributed Synchronous SGD"): what a parameter server keeps between the
// pushes of one step, and the rule of how many gradients a step needs.
//
// The protocol (mobilenet.ps.v1.SyncDecision): steps are counted by server 0, the step
// leader. A worker pulls from server 0 first, which tells it the step and the decision
// that closed the previous one; the worker hands that decision to the other servers with
// its pulls, and they apply it before answering. A worker pushes its gradients to the
// other servers first and to server 0 last, only once all of them accepted, so every
// gradient server 0 counts is held by every server. Server 0 closes the step with the
// first N gradients it counted for it (backups' later ones are dropped), applies their
// average and names them in its decision; every other server applies the average of
// exactly those workers' gradients. A worker that dies mid-push never reached server 0,
// so no server applies its gradients; a server that restarted mid-step and lost some of
// the named gradients applies what it holds and counts the step as incomplete.
#ifndef MOBILENET_PARAMETER_SERVER_CORE_SYNC_REPLICAS_H_
#define MOBILENET_PARAMETER_SERVER_CORE_SYNC_REPLICAS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "parameter_server/core/parameter_shard.h"

namespace mobilenet {

// A decision names at most this many dropped gradients (SyncDecision.dropped_*); more
// wait for the next one.
inline constexpr int kMaxDroppedPerDecision = 64;
// Server 0 remembers at most this many dropped gradients not yet named (beyond, they
// are counted in sync_pushes_dropped only).
inline constexpr int kMaxDroppedPending = 4096;

struct SyncReplicasConfig {
  bool enabled = false;
  // Gradients a step aggregates: N in [1, number of workers], or 0 for every live,
  // unfinished worker (--replicas_to_aggregate=all).
  int replicas_to_aggregate = 0;
  // A worker not heard from for this long is not alive.
  absl::Duration worker_liveness = absl::Seconds(30);
};

// Parses --replicas_to_aggregate for a cluster of `num_workers`: "" (every worker, no
// backups), "all" (0: every live worker) or N in [1, num_workers]. InvalidArgument
// naming the flag otherwise.
absl::StatusOr<int> ParseReplicasToAggregate(absl::string_view text, int num_workers);

// What the step leader knows of one member when it counts the step's needs.
struct MemberLiveness {
  int32_t worker_id = 0;
  double seconds_since_seen = -1;  // -1: not heard from since the server started
  bool finished = false;
  bool share_done = false;  // pushed the last gradient of its share (and waits or ends)
};

// Heard from within `liveness` (and since the server started). The one liveness rule of
// the servers: sync steps, Status' live_workers, the data leases.
inline bool IsAlive(const MemberLiveness& member, absl::Duration liveness) {
  return member.seconds_since_seen >= 0 &&
         member.seconds_since_seen < absl::ToDoubleSeconds(liveness);
}

// The gradients the open step needs: the configured N, but never more than the members
// still training (not finished, share not done) together with those already counted for
// it (`counted`), so the last steps of a run close; with replicas_to_aggregate 0, the
// live ones of them. A member that is not alive still counts towards N, so the step
// waits for it (see SyncWaitingReason), until some member's share is done: from then on
// (the end of the run) only live members count, so that no last step waits for a dead
// worker. At least 1.
int SyncGradientsNeeded(const SyncReplicasConfig& config,
                        const std::vector<MemberLiveness>& members,
                        absl::Span<const int32_t> counted = {});

// Why the open step `step` waits, when fewer live unfinished members exist than it
// needs: e.g. "step 120 waits: 1 of 2 gradients, 1 live worker (worker 2 not heard from
// for 35 s)"; empty when enough are alive.
std::string SyncWaitingReason(const SyncReplicasConfig& config, int64_t step, int pending,
                              int needed, const std::vector<MemberLiveness>& members);

// Each member's latest gradients for a step, held until a decision names them or newer
// ones replace them. Buffers are allocated on a member's first push and reused: at most
// num_workers * (parameter_count + state_count) floats. Not thread-safe.
class SyncGradients {
 public:
  struct Held {
    int64_t step = -1;  // -1: nothing held
    uint64_t request_id = 0;
    int64_t examples = 0;
    int64_t reported_steps = 0;
    double images_per_sec = 0;
    bool has_stats = false;
  };

  SyncGradients(int num_workers, int64_t parameter_count, int64_t state_count);

  // Keeps `update` (checked by ShardUpdate::Check) as member `worker`'s gradients for
  // `step`, replacing what it held.
  void Store(int32_t worker, int64_t step, uint64_t request_id, int64_t reported_steps,
             double images_per_sec, const ShardUpdate& update);
  const Held& held(int32_t worker) const { return held_[worker]; }

  struct Average {
    int64_t gradients = 0;  // workers averaged
    int64_t stats = 0;      // of them, the ones that sent batch statistics
  };
  // Averages the gradients (and, over those that sent them, the batch statistics) of the
  // members of `workers` holding `step` into `gradients` (parameter_count floats) and
  // `stats` (state_count floats, or cleared when none sent any). Members not holding
  // `step` are left out.
  Average AverageOf(int64_t step, absl::Span<const int32_t> workers, std::vector<float>& gradients,
                    std::vector<float>& stats) const;

  // Floats allocated for members' buffers.
  int64_t allocated_floats() const;

 private:
  const int64_t parameter_count_;
  const int64_t state_count_;
  std::vector<Held> held_;
  std::vector<std::vector<float>> gradients_;
  std::vector<std::vector<float>> stats_;
};

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CORE_SYNC_REPLICAS_H_
