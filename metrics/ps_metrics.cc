#include "metrics/ps_metrics.h"

#include <prometheus/client_metric.h>

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace mobilenet {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

ClientMetric Sample(double value, MetricType type, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric metric;
  metric.label = std::move(labels);
  if (type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  return metric;
}

MetricFamily One(const char* name, const char* help, MetricType type, double value) {
  return MetricFamily{name, help, type, {Sample(value, type)}};
}

// Cumulative buckets (the last one +Inf) from per-bucket counts with `bounds`.
ClientMetric Histogram(const std::vector<double>& bounds, const std::vector<int64_t>& counts,
                       double sum) {
  ClientMetric metric;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    cumulative += static_cast<uint64_t>(counts[i]);
    metric.histogram.bucket.push_back(ClientMetric::Bucket{
        cumulative, i < bounds.size() ? bounds[i] : std::numeric_limits<double>::infinity()});
  }
  metric.histogram.sample_count = cumulative;
  metric.histogram.sample_sum = sum;
  return metric;
}

ClientMetric StalenessBuckets(const StalenessHistogram& staleness) {
  const std::vector<double> bounds = {0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128};
  std::vector<int64_t> counts(bounds.size() + 1, 0);
  for (const auto& [value, samples] : staleness.counts()) {
    size_t bucket = 0;
    while (bucket < bounds.size() && static_cast<double>(value) > bounds[bucket]) ++bucket;
    counts[bucket] += samples;
  }
  return Histogram(bounds, counts, staleness.sum());
}

}  // namespace

void ParameterServerMetrics::RecordCheckpointWritten(absl::Duration duration) {
  absl::MutexLock lock(&mu_);
  ++checkpoints_written_;
  last_checkpoint_duration_ = duration;
}

std::vector<MetricFamily> ParameterServerMetrics::Collect() const {
  const ps::v1::StatusResponse s = core_->GetStatus();
  const PushDistributions distributions = core_->GetPushDistributions();
  const double now = absl::ToUnixMicros(absl::Now()) / 1e6;
  std::vector<MetricFamily> families;
  const MetricType kGauge = MetricType::Gauge;
  const MetricType kCounter = MetricType::Counter;

  families.push_back(One("mobilenet_ps_global_step",
                         "This shard's version: pushes applied to it over the whole training.",
                         kGauge, s.global_step()));
  families.push_back(One("mobilenet_ps_examples_seen",
                         "Training examples in the pushes applied over the whole training.", kGauge,
                         s.examples_seen()));
  families.push_back(
      One("mobilenet_ps_epoch", "Epochs of the training set seen.", kGauge, s.epoch()));
  families.push_back(One("mobilenet_ps_learning_rate", "The learning rate of the next update.",
                         kGauge, s.learning_rate()));
  families.push_back(One("mobilenet_ps_workers", "Members of the cluster (worker tasks).", kGauge,
                         s.num_workers()));
  families.push_back(
      One("mobilenet_ps_uptime_seconds", "Since this server started.", kGauge, s.uptime_seconds()));
  families.push_back(One("mobilenet_ps_live_workers",
                         "Members heard from within --worker_liveness_secs, not finished.", kGauge,
                         s.live_workers()));
  const MembershipEventTotals events = core_->GetMembershipEventTotals();
  families.push_back(MetricFamily{
      "mobilenet_ps_membership_events_total",
      "Members that joined (first heard from, or again after leaving), left (not heard from "
      "for --worker_liveness_secs) or finished, as this server saw them.",
      kCounter,
      {Sample(events.joined, kCounter, {{"kind", "joined"}}),
       Sample(events.left, kCounter, {{"kind", "left"}}),
       Sample(events.finished, kCounter, {{"kind", "finished"}})}});
  if (s.has_data_leases()) {
    families.push_back(One("mobilenet_ps_data_blocks_completed",
                           "Data blocks trained to completion (server 0, --max_workers).", kGauge,
                           s.data_leases().blocks_completed()));
    families.push_back(One("mobilenet_ps_data_blocks_reassigned_total",
                           "Data blocks taken back from members that left or lost them "
                           "(server 0, --max_workers).",
                           kCounter, s.data_leases().blocks_reassigned()));
  }
  if (s.sync_replicas()) {
    families.push_back(One("mobilenet_ps_sync_steps",
                           "Synchronous steps applied (server 0's step number).", kGauge,
                           s.sync_steps()));
    families.push_back(One("mobilenet_ps_sync_gradients_needed",
                           "Gradients the open synchronous step needs (server 0).", kGauge,
                           s.sync_gradients_needed()));
    families.push_back(One("mobilenet_ps_sync_gradients_pending",
                           "Gradients counted for the open synchronous step (server 0).", kGauge,
                           s.sync_gradients_pending()));
    families.push_back(One("mobilenet_ps_sync_waiting",
                           "1 while the open step waits for workers that are not alive.", kGauge,
                           s.sync_waiting().empty() ? 0 : 1));
    families.push_back(One("mobilenet_ps_sync_pushes_dropped_total",
                           "Gradients dropped as computed from a closed step (backups').",
                           kCounter, s.sync_pushes_dropped()));
    families.push_back(One("mobilenet_ps_sync_steps_incomplete_total",
                           "Steps applied without some of the named gradients (lost to a "
                           "restart).",
                           kCounter, s.sync_steps_incomplete()));
  }

  MetricFamily pushes{"mobilenet_ps_pushes_total",
                      "Pushes received by this run of the server, by result.",
                      kCounter,
                      {}};
  for (const auto& [result, count] :
       std::vector<std::pair<std::string, int64_t>>{{"applied", s.pushes_applied()},
                                                    {"stale_rejected", s.pushes_rejected_stale()},
                                                    {"restarted", s.pushes_rejected_restarted()},
                                                    {"invalid", s.pushes_invalid()},
                                                    {"duplicate", s.pushes_duplicate()}}) {
    pushes.metric.push_back(Sample(count, kCounter, {{"result", result}}));
  }
  families.push_back(std::move(pushes));
  if (core_->shard().config().staleness_policy == StalenessPolicy::kDelayCompensation) {
    families.push_back(MetricFamily{
        "mobilenet_ps_dc_pushes_total",
        "Pushes applied by this run of the server with their gradients delay-compensated "
        "(true) or as they came, no backup of the worker's weights matching (false).",
        kCounter,
        {Sample(s.pushes_compensated(), kCounter, {{"compensated", "true"}}),
         Sample(s.pushes_uncompensated(), kCounter, {{"compensated", "false"}})}});
  }
  families.push_back(MetricFamily{
      "mobilenet_ps_requests_refused_total",
      "Requests of any method refused because the caller may not make them "
      "(permission_denied) or could not be identified (unauthenticated).",
      kCounter,
      {Sample(s.requests_denied(), kCounter, {{"reason", "permission_denied"}}),
       Sample(s.requests_unauthenticated(), kCounter, {{"reason", "unauthenticated"}})}});

  families.push_back(
      MetricFamily{"mobilenet_ps_push_staleness",
                   "Versions the shard advanced between a worker's pull and its applied push.",
                   MetricType::Histogram,
                   {StalenessBuckets(distributions.staleness)}});
  families.push_back(MetricFamily{
      "mobilenet_ps_push_apply_seconds",
      "Time the shard took to apply a push's update (applied pushes).",
      MetricType::Histogram,
      {Histogram(distributions.apply_time.upper_bounds(), distributions.apply_time.counts(),
                 distributions.apply_time.sum_seconds())}});

  families.push_back(One("mobilenet_ps_received_bytes_total",
                         "Bytes of protocol messages received (pushes and requests).", kCounter,
                         s.bytes_in()));
  families.push_back(One("mobilenet_ps_sent_bytes_total",
                         "Bytes of protocol messages sent (pulled weights and answers).", kCounter,
                         s.bytes_out()));

  {
    absl::MutexLock lock(&mu_);
    families.push_back(One("mobilenet_ps_checkpoints_written_total",
                           "Checkpoint files written by this run of the server.", kCounter,
                           checkpoints_written_));
    if (checkpoints_written_ > 0) {
      families.push_back(One("mobilenet_ps_last_checkpoint_duration_seconds",
                             "Time taken to write the latest checkpoint.", kGauge,
                             absl::ToDoubleSeconds(last_checkpoint_duration_)));
    }
  }
  if (s.last_checkpoint_unix_seconds() > 0) {
    families.push_back(One("mobilenet_ps_last_checkpoint_timestamp_seconds",
                           "When the latest checkpoint was written (or the restored one).", kGauge,
                           s.last_checkpoint_unix_seconds()));
    families.push_back(One("mobilenet_ps_last_checkpoint_age_seconds",
                           "Since the latest checkpoint was written (or the restored one).", kGauge,
                           std::max(0.0, now - s.last_checkpoint_unix_seconds())));
  }
  if (s.eval_examples() > 0) {
    families.push_back(One("mobilenet_ps_eval_accuracy",
                           "The chief's latest test accuracy, as a ratio in [0, 1].", kGauge,
                           s.eval_accuracy()));
    families.push_back(
        One("mobilenet_ps_eval_loss", "The chief's latest mean test loss.", kGauge, s.eval_loss()));
    families.push_back(One("mobilenet_ps_eval_step",
                           "The global step of the chief's latest evaluation.", kGauge,
                           s.eval_step()));
    // Separate families rather than a label on the ones above, so that their series (and
    // the rules and dashboards over them) stay exactly as they were.
    if (s.eval_average_examples() > 0) {
      families.push_back(One("mobilenet_ps_eval_average_accuracy",
                             "The chief's latest test accuracy of the weight average "
                             "(--weight_ema_decay), as a ratio in [0, 1].",
                             kGauge, s.eval_average_accuracy()));
      families.push_back(One("mobilenet_ps_eval_average_loss",
                             "The chief's latest mean test loss of the weight average.", kGauge,
                             s.eval_average_loss()));
    }
  }
  if (s.weight_ema_decay() > 0) {
    families.push_back(One("mobilenet_ps_weight_ema_decay",
                           "The decay of the weight average this server keeps "
                           "(--weight_ema_decay; absent when it keeps none).",
                           kGauge, s.weight_ema_decay()));
  }

  MetricFamily seen{"mobilenet_ps_worker_last_seen_age_seconds",
                    "Since any request of the worker (workers heard from by this run).",
                    kGauge,
                    {}};
  MetricFamily finished{"mobilenet_ps_worker_finished",
                        "1 once the worker said it finished its share (a silent finished "
                        "worker is not a problem), else 0.",
                        kGauge,
                        {}};
  for (const ps::v1::WorkerStatus& w : s.workers()) {
    // The ledger lists exactly the members [0, num_workers): bounded label values.
    if (w.worker_id() < 0 || w.worker_id() >= s.num_workers()) continue;
    if (w.seconds_since_last_seen() < 0) continue;
    const std::string worker = absl::StrCat(w.worker_id());
    seen.metric.push_back(Sample(w.seconds_since_last_seen(), kGauge, {{"worker", worker}}));
    finished.metric.push_back(Sample(w.finished() ? 1 : 0, kGauge, {{"worker", worker}}));
  }
  if (!seen.metric.empty()) families.push_back(std::move(seen));
  if (!finished.metric.empty()) families.push_back(std::move(finished));
  return families;
}

}  // namespace mobilenet
