#include "metrics/ps_metrics.h"

#include <prometheus/text_serializer.h>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parameter_server/core/tiny_layouts_for_test.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Bytes(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

// Server 0 of a one-server plan of the tiny model, in a cluster of 2 workers.
class ParameterServerMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<ShardingPlan> plan =
        ShardingPlan::CreateForLayouts(TinyParameters(), TinyState(), 1, "tiny");
    ASSERT_TRUE(plan.ok()) << plan.status();
    plan_ = std::make_unique<ShardingPlan>(*plan);
    MakeCore(StalenessPolicy::kApply);
  }

  // A core for 2 workers with `policy` in place of the current one, and its metrics.
  void MakeCore(StalenessPolicy policy) {
    ParameterShardConfig config;
    config.learning_rate.initial_learning_rate = 0.1f;
    config.learning_rate.examples_per_epoch = 100;
    config.staleness_policy = policy;
    CoreOptions options;
    options.num_workers = 2;
    absl::StatusOr<std::unique_ptr<ParameterServerCore>> core =
        ParameterServerCore::Create(*plan_, config, options);
    ASSERT_TRUE(core.ok()) << core.status();
    metrics_.reset();
    core_ = std::move(*core);
    metrics_ = std::make_unique<ParameterServerMetrics>(core_.get());
  }

  ps::v1::PushRequest Push(int32_t worker_id, uint64_t request_id) const {
    ps::v1::PushRequest push;
    push.set_plan_fingerprint(plan_->fingerprint());
    push.set_worker_id(worker_id);
    push.set_request_id(request_id);
    push.set_computed_from_version(0);
    push.set_example_count(16);
    push.set_gradients(Bytes(std::vector<float>(core_->parameter_count(), 0.5f)));
    push.set_batch_stats(Bytes(std::vector<float>(core_->state_count(), 1.0f)));
    push.set_server_incarnation(core_->incarnation());
    return push;
  }

  std::string Scrape() const {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, metrics_->Collect());
    return out.str();
  }

  std::unique_ptr<ShardingPlan> plan_;
  std::unique_ptr<ParameterServerCore> core_;
  std::unique_ptr<ParameterServerMetrics> metrics_;
};

TEST_F(ParameterServerMetricsTest, AFreshServerHasZeroCountsAndNoMadeUpValues) {
  const std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_global_step 0\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_pushes_total{result=\"applied\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_push_staleness_count 0\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_checkpoints_written_total 0\n"));
  EXPECT_THAT(text, Not(HasSubstr("mobilenet_ps_last_checkpoint_age_seconds")));
  EXPECT_THAT(text, Not(HasSubstr("mobilenet_ps_eval_accuracy")));
  EXPECT_THAT(text, Not(HasSubstr("mobilenet_ps_worker_last_seen_age_seconds")));
  EXPECT_THAT(text, Not(HasSubstr("mobilenet_ps_dc_pushes_total")));  // not --staleness_policy=dc
}

TEST_F(ParameterServerMetricsTest, CountsDelayCompensatedPushesUnderTheDcPolicy) {
  MakeCore(StalenessPolicy::kDelayCompensation);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_THAT(Scrape(), HasSubstr("mobilenet_ps_dc_pushes_total{compensated=\"true\"} 0\n"));

  // Worker 0's training pull of version 0 is its backup; worker 1 pulled nothing.
  ps::v1::PullRequest pull;
  pull.set_plan_fingerprint(plan_->fingerprint());
  pull.set_worker_id(0);
  pull.set_training(true);
  std::vector<float> weights(core_->parameter_count());
  ASSERT_TRUE(core_->Pull(Caller::Trusted(), pull, absl::MakeSpan(weights), {}).ok());
  ps::v1::PushResponse response;
  ASSERT_TRUE(core_->Push(Caller::Trusted(), Push(0, 1), response).ok());
  ASSERT_TRUE(core_->Push(Caller::Trusted(), Push(1, 1), response).ok());
  const std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_dc_pushes_total{compensated=\"true\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_dc_pushes_total{compensated=\"false\"} 1\n"));
}

TEST_F(ParameterServerMetricsTest, ReflectsPushesAppliedAndRefused) {
  ps::v1::PushResponse response;
  ASSERT_TRUE(core_->Push(Caller::Trusted(), Push(0, 1), response).ok());
  ASSERT_TRUE(core_->Push(Caller::Trusted(), Push(1, 1), response).ok());  // staleness 1
  ASSERT_TRUE(core_->Push(Caller::Trusted(), Push(1, 1), response).ok());  // a retry
  ASSERT_TRUE(response.duplicate());
  ps::v1::PushRequest wrong = Push(0, 2);
  wrong.set_gradients("short");
  ASSERT_FALSE(core_->Push(Caller::Trusted(), wrong, response).ok());

  const std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_global_step 2\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_examples_seen 32\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_pushes_total{result=\"applied\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_pushes_total{result=\"duplicate\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_pushes_total{result=\"invalid\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_pushes_total{result=\"stale_rejected\"} 0\n"));
  // Staleness 0 and 1: one sample in each of the first two buckets.
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_push_staleness_bucket{le=\"0\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_push_staleness_bucket{le=\"1\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_push_staleness_bucket{le=\"+Inf\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_push_staleness_sum 1\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_push_apply_seconds_count 2\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_push_apply_seconds_bucket{le=\"+Inf\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_worker_last_seen_age_seconds{worker=\"0\"}"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_worker_last_seen_age_seconds{worker=\"1\"}"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_worker_finished{worker=\"1\"} 0\n"));
  ps::v1::FinishRequest finish;
  finish.set_plan_fingerprint(plan_->fingerprint());
  finish.set_worker_id(1);
  ASSERT_TRUE(core_->Finish(Caller::Trusted(), finish).ok());
  EXPECT_THAT(Scrape(), HasSubstr("mobilenet_ps_worker_finished{worker=\"1\"} 1\n"));
}

TEST_F(ParameterServerMetricsTest, ShowsCheckpointsAndTheChiefsEvaluation) {
  metrics_->RecordCheckpointWritten(absl::Milliseconds(250));
  core_->SetLastCheckpoint(absl::Now() - absl::Seconds(10), 0, "/tmp/x.mnck");
  ps::v1::EvaluationReport report;
  report.set_plan_fingerprint(plan_->fingerprint());
  report.set_worker_id(0);
  report.set_global_step(0);
  report.set_examples(200);
  report.set_correct(150);
  report.set_loss(0.5);
  ASSERT_TRUE(core_->ReportEvaluation(Caller::Trusted(), report).ok());

  const std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_checkpoints_written_total 1\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_last_checkpoint_duration_seconds 0.25\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_last_checkpoint_age_seconds 1"));  // 10.x
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_eval_accuracy 0.75\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_eval_loss 0.5\n"));
  EXPECT_THAT(text, Not(HasSubstr("mobilenet_ps_eval_average_accuracy")));
  EXPECT_THAT(text, Not(HasSubstr("mobilenet_ps_weight_ema_decay")));

  // The weight average's figures come as families of their own; the ones above stay.
  report.set_average_examples(200);
  report.set_average_correct(160);
  report.set_average_loss(0.4);
  ASSERT_TRUE(core_->ReportEvaluation(Caller::Trusted(), report).ok());
  const std::string averaged = Scrape();
  EXPECT_THAT(averaged, HasSubstr("mobilenet_ps_eval_accuracy 0.75\n"));
  EXPECT_THAT(averaged, HasSubstr("mobilenet_ps_eval_average_accuracy 0.8\n"));
  EXPECT_THAT(averaged, HasSubstr("mobilenet_ps_eval_average_loss 0.4\n"));
}

TEST_F(ParameterServerMetricsTest, CountsMembershipEventsAndServer0sDataBlocks) {
  EXPECT_THAT(Scrape(), Not(HasSubstr("mobilenet_ps_data_blocks")));
  ps::v1::FinishRequest finish;
  finish.set_plan_fingerprint(plan_->fingerprint());
  finish.set_worker_id(1);
  ASSERT_TRUE(core_->Finish(Caller::Trusted(), finish).ok());
  std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_membership_events_total{kind=\"joined\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_membership_events_total{kind=\"finished\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_membership_events_total{kind=\"left\"} 0\n"));

  // Server 0 of an elastic cluster: its data blocks.
  CoreOptions options;
  options.num_workers = 2;
  options.max_workers = 2;
  ParameterShardConfig config;
  config.learning_rate.examples_per_epoch = 100;
  absl::StatusOr<std::unique_ptr<ParameterServerCore>> elastic =
      ParameterServerCore::Create(*plan_, config, options);
  ASSERT_TRUE(elastic.ok()) << elastic.status();
  ps::v1::LeaseRequest lease;
  lease.set_plan_fingerprint(plan_->fingerprint());
  lease.set_worker_id(1);
  lease.mutable_data()->set_num_examples(100);
  lease.mutable_data()->set_blocks_per_epoch(4);
  lease.mutable_data()->set_epochs(1);
  ps::v1::LeaseResponse response;
  ASSERT_TRUE((*elastic)->LeaseData(Caller::Trusted(), lease, response).ok());
  *lease.add_completed() = response.block();
  ASSERT_TRUE((*elastic)->LeaseData(Caller::Trusted(), lease, response).ok());
  ASSERT_TRUE((*elastic)->Finish(Caller::Trusted(), finish).ok());  // its block returns
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, ParameterServerMetrics(elastic->get()).Collect());
  text = out.str();
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_data_blocks_completed 1\n"));
  EXPECT_THAT(text, HasSubstr("mobilenet_ps_data_blocks_reassigned_total 1\n"));
}

}  // namespace
}  // namespace mobilenet
