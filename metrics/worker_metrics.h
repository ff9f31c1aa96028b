// A worker's training metrics (prefix mobilenet_worker_), recorded once per step (never
// per element):
//   mobilenet_worker_steps_total, mobilenet_worker_examples_total   (images/s is
//       rate(mobilenet_worker_examples_total[1m]))
//   mobilenet_worker_loss                              the latest batch's training loss
//   mobilenet_worker_step_phase_seconds{phase=compute|pull_wait|push_wait}   histogram of
//       where each step's time went (worker/trainer.h StepTiming)
//   mobilenet_worker_rpc_retries_total{grpc_method,grpc_code}   transient failures retried
//       (methods of the protocol only; codes as grpc_server_handled_total spells them)
#ifndef MOBILENET_METRICS_WORKER_METRICS_H_
#define MOBILENET_METRICS_WORKER_METRICS_H_

#include <grpcpp/support/status.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace mobilenet {

// Thread-safe (prometheus-cpp's metrics are).
class WorkerMetrics {
 public:
  // Registers the metrics in `registry`, which must outlive this.
  explicit WorkerMetrics(prometheus::Registry& registry);

  // Records one completed step of `examples` images.
  void RecordStep(absl::Duration compute, absl::Duration pull_wait, absl::Duration push_wait,
                  double loss, int examples);
  // Counts a retry of `method` (a method of the protocol: "Pull", "Push", ...; any other
  // name counts as "unknown") after a failure with `code`.
  void RecordRetry(absl::string_view method, grpc::StatusCode code);

 private:
  prometheus::Counter& steps_;
  prometheus::Counter& examples_;
  prometheus::Gauge& loss_;
  prometheus::Family<prometheus::Histogram>& phases_;
  prometheus::Family<prometheus::Counter>& retries_;
  prometheus::Histogram& compute_;
  prometheus::Histogram& pull_wait_;
  prometheus::Histogram& push_wait_;
};

}  // namespace mobilenet

#endif  // MOBILENET_METRICS_WORKER_METRICS_H_
