#include "metrics/worker_metrics.h"

#include <prometheus/text_serializer.h>

#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

TEST(WorkerMetricsTest, CountsStepsAndExamplesAndSplitsTheirTime) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  metrics.RecordStep(absl::Milliseconds(200), absl::Milliseconds(3), absl::Milliseconds(40), 2.5,
                     64);
  metrics.RecordStep(absl::Milliseconds(100), absl::ZeroDuration(), absl::Milliseconds(60), 1.5,
                     64);
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  const std::string text = out.str();
  EXPECT_THAT(text, HasSubstr("mobilenet_worker_steps_total 2\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_worker_examples_total 128\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_worker_loss 1.5\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_worker_step_phase_seconds_count{phase=\"compute\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_worker_step_phase_seconds_sum{phase=\"compute\"} 0.3"));
  EXPECT_THAT(text, HasSubstr("mobilenet_worker_step_phase_seconds_sum{phase=\"push_wait\"} 0.1"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "mobilenet_worker_step_phase_seconds_bucket{phase=\"pull_wait\",le=\"0.001\"} 1\n"));
}

TEST(WorkerMetricsTest, CountsRetriesByMethodAndCodeWithBoundedLabels) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  metrics.RecordRetry("Push", grpc::StatusCode::UNAVAILABLE);
  metrics.RecordRetry("Push", grpc::StatusCode::UNAVAILABLE);
  metrics.RecordRetry("Pull", grpc::StatusCode::RESOURCE_EXHAUSTED);
  metrics.RecordRetry("Something/else", grpc::StatusCode::UNAVAILABLE);
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  const std::string text = out.str();
  EXPECT_THAT(text, HasSubstr("mobilenet_worker_rpc_retries_total{grpc_code=\"Unavailable\","
                              "grpc_method=\"Push\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_worker_rpc_retries_total{grpc_code=\"ResourceExhausted\","
                              "grpc_method=\"Pull\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_worker_rpc_retries_total{grpc_code=\"Unavailable\","
                              "grpc_method=\"unknown\"} 1\n"));
}

}  // namespace
}  // namespace mobilenet
