// The parameter server's own metrics (prefix mobilenet_ps_), read from its core when
// /metrics is scraped: the push path pays nothing for them beyond what the core already
// counts for GetStatus (its counters, and the staleness and apply-time histograms it keeps
// under the lock a push already takes once to count itself). No metrics-library lock is
// taken on the push path.
//
//   mobilenet_ps_global_step, mobilenet_ps_examples_seen, mobilenet_ps_epoch,
//   mobilenet_ps_learning_rate                                       gauges
//   mobilenet_ps_pushes_total{result=applied|stale_rejected|restarted|invalid|duplicate}
//   mobilenet_ps_dc_pushes_total{compensated=true|false}
//                                     applied pushes, --staleness_policy=dc only
//   mobilenet_ps_requests_refused_total{reason=permission_denied|unauthenticated}
//                                                     (over every method, not pushes alone)
//   mobilenet_ps_push_staleness                       histogram of applied pushes (versions)
//   mobilenet_ps_push_apply_seconds                   histogram of the shard's update
//   mobilenet_ps_received_bytes_total, mobilenet_ps_sent_bytes_total   protocol messages
//   mobilenet_ps_checkpoints_written_total, mobilenet_ps_last_checkpoint_duration_seconds,
//   mobilenet_ps_last_checkpoint_timestamp_seconds, mobilenet_ps_last_checkpoint_age_seconds
//   mobilenet_ps_eval_accuracy, mobilenet_ps_eval_loss, mobilenet_ps_eval_step
//                                                     the chief's latest test evaluation
//   mobilenet_ps_worker_last_seen_age_seconds{worker} members [0, num_workers) heard from
//   mobilenet_ps_workers, mobilenet_ps_live_workers, mobilenet_ps_uptime_seconds
//   mobilenet_ps_sync_steps, mobilenet_ps_sync_gradients_needed,
//   mobilenet_ps_sync_gradients_pending, mobilenet_ps_sync_waiting (0/1)       gauges,
//   mobilenet_ps_sync_pushes_dropped_total, mobilenet_ps_sync_steps_incomplete_total
//                                                     --sync_replicas only
//   mobilenet_ps_membership_events_total{kind=joined|left|finished}
//   mobilenet_ps_data_blocks_completed (gauge), mobilenet_ps_data_blocks_reassigned_total
//                                                     server 0 with --max_workers only
// Series without a value yet (no checkpoint, no evaluation, a worker never heard from) are
// left out rather than reported as a made-up number.
#ifndef MOBILENET_METRICS_PS_METRICS_H_
#define MOBILENET_METRICS_PS_METRICS_H_

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "parameter_server/core/parameter_server_core.h"

namespace mobilenet {

// Thread-safe.
class ParameterServerMetrics final : public prometheus::Collectable {
 public:
  // Reads `core` (not owned; it must outlive this) at each Collect.
  explicit ParameterServerMetrics(const ParameterServerCore* core) : core_(core) {}

  // Counts a checkpoint file written, which took `duration`.
  void RecordCheckpointWritten(absl::Duration duration);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const ParameterServerCore* const core_;
  mutable absl::Mutex mu_;
  int64_t checkpoints_written_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration last_checkpoint_duration_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
};

}  // namespace mobilenet

#endif  // MOBILENET_METRICS_PS_METRICS_H_
