#include "metrics/worker_metrics.h"

#include <string>

#include "metrics/grpc_server_metrics.h"

namespace mobilenet {
namespace {

// From a fraction of a millisecond (a tiny model's step, a local pull) to tens of seconds
// (a retried push).
prometheus::Histogram::BucketBoundaries PhaseBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}

prometheus::Histogram& Phase(prometheus::Family<prometheus::Histogram>& family, const char* phase) {
  return family.Add({{"phase", phase}}, PhaseBuckets());
}

}  // namespace

WorkerMetrics::WorkerMetrics(prometheus::Registry& registry)
    : steps_(prometheus::BuildCounter()
                 .Name("mobilenet_worker_steps_total")
                 .Help("Training steps this worker completed (pushed or refused as stale).")
                 .Register(registry)
                 .Add({})),
      examples_(prometheus::BuildCounter()
                    .Name("mobilenet_worker_examples_total")
                    .Help("Training images in this worker's completed steps.")
                    .Register(registry)
                    .Add({})),
      loss_(prometheus::BuildGauge()
                .Name("mobilenet_worker_loss")
                .Help("The training loss of this worker's latest batch.")
                .Register(registry)
                .Add({})),
      phases_(prometheus::BuildHistogram()
                  .Name("mobilenet_worker_step_phase_seconds")
                  .Help("Time of each step spent computing, or blocked on pulling weights or "
                        "pushing gradients.")
                  .Register(registry)),
      retries_(prometheus::BuildCounter()
                   .Name("mobilenet_worker_rpc_retries_total")
                   .Help("Calls to a parameter server retried after a transient failure, by "
                         "method and status code.")
                   .Register(registry)),
      compute_(Phase(phases_, "compute")),
      pull_wait_(Phase(phases_, "pull_wait")),
      push_wait_(Phase(phases_, "push_wait")) {}

void WorkerMetrics::RecordStep(absl::Duration compute, absl::Duration pull_wait,
                               absl::Duration push_wait, double loss, int examples) {
  steps_.Increment();
  examples_.Increment(examples);
  loss_.Set(loss);
  compute_.Observe(absl::ToDoubleSeconds(compute));
  pull_wait_.Observe(absl::ToDoubleSeconds(pull_wait));
  push_wait_.Observe(absl::ToDoubleSeconds(push_wait));
}

void WorkerMetrics::RecordRetry(absl::string_view method, grpc::StatusCode code) {
  const bool known = method == "Pull" || method == "Push" || method == "GetStatus" ||
                     method == "ReportEvaluation" || method == "Finish" || method == "LeaseData";
  retries_
      .Add({{"grpc_method", known ? std::string(method) : "unknown"},
            {"grpc_code", GrpcCodeLabel(code)}})
      .Increment();
}

}  // namespace mobilenet
