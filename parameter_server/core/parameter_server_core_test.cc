#include "parameter_server/core/parameter_server_core.h"

#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/float_conversion.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parameter_server/core/payload_dtype.h"
#include "parameter_server/core/tiny_layouts_for_test.h"

namespace mobilenet {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Bytes(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

// Server 0 of a one-server plan of the tiny model, in a cluster of 2 workers.
class ParameterServerCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<ShardingPlan> plan =
        ShardingPlan::CreateForLayouts(TinyParameters(), TinyState(), 1, "tiny");
    ASSERT_TRUE(plan.ok()) << plan.status();
    plan_ = std::make_unique<ShardingPlan>(*plan);
    core_ = MakeCore(/*incarnation=*/1001);
  }

  std::unique_ptr<ParameterServerCore> MakeCore(uint64_t incarnation,
                                                StalenessPolicy policy = StalenessPolicy::kApply,
                                                float weight_ema_decay = 0.0f) {
    ParameterShardConfig config;
    config.seed = 3;
    config.optimizer.kind = OptimizerKind::kRmsProp;
    config.learning_rate.initial_learning_rate = 0.1f;
    config.learning_rate.decay_factor = 1.0f;
    config.learning_rate.examples_per_epoch = 100;
    config.staleness_policy = policy;
    config.max_staleness = 1;
    config.weight_ema_decay = weight_ema_decay;
    CoreOptions options;
    options.num_workers = 2;
    options.incarnation = incarnation;
    absl::StatusOr<std::unique_ptr<ParameterServerCore>> core =
        ParameterServerCore::Create(*plan_, config, options);
    EXPECT_TRUE(core.ok()) << core.status();
    return core.ok() ? std::move(*core) : nullptr;
  }

  ps::v1::PullRequest PullRequest(int32_t worker_id = kToolWorkerId) const {
    ps::v1::PullRequest request;
    request.set_plan_fingerprint(plan_->fingerprint());
    request.set_include_state(true);
    request.set_worker_id(worker_id);
    return request;
  }

  struct Pulled {
    int64_t version = -1;
    std::vector<float> weights = std::vector<float>(17), state = std::vector<float>(6);
  };
  Pulled PullAll(ParameterServerCore& core) const {
    Pulled pulled;
    absl::StatusOr<int64_t> version =
        core.Pull(Caller::Trusted(), PullRequest(), absl::MakeSpan(pulled.weights),
                  absl::MakeSpan(pulled.state));
    EXPECT_TRUE(version.ok()) << version.status();
    pulled.version = version.value_or(-1);
    return pulled;
  }

  ps::v1::PushRequest Push(int32_t worker_id, uint64_t request_id, int64_t from_version,
                           float gradient = 0.5f) const {
    ps::v1::PushRequest push;
    push.set_plan_fingerprint(plan_->fingerprint());
    push.set_worker_id(worker_id);
    push.set_request_id(request_id);
    push.set_computed_from_version(from_version);
    push.set_example_count(16);
    push.set_gradients(Bytes(std::vector<float>(17, gradient)));
    push.set_batch_stats(Bytes(std::vector<float>(6, 1.0f)));
    push.set_worker_steps(7);
    push.set_worker_images_per_sec(99.5);
    push.set_server_incarnation(core_->incarnation());
    return push;
  }

  absl::StatusOr<ps::v1::PushResponse> Send(ParameterServerCore& core,
                                            const ps::v1::PushRequest& push) {
    ps::v1::PushResponse response;
    absl::Status status = core.Push(Caller::Trusted(), push, response);
    if (!status.ok()) return status;
    return response;
  }

  ps::v1::FinishRequest Finish(int32_t worker_id, bool complete) const {
    ps::v1::FinishRequest finish;
    finish.set_plan_fingerprint(plan_->fingerprint());
    finish.set_worker_id(worker_id);
    finish.set_training_complete(complete);
    return finish;
  }

  std::unique_ptr<ShardingPlan> plan_;
  std::unique_ptr<ParameterServerCore> core_;
};

TEST_F(ParameterServerCoreTest, PullsAndPushesFollowTheProtocol) {
  const Pulled first = PullAll(*core_);
  EXPECT_EQ(first.version, 0);
  absl::StatusOr<ps::v1::PushResponse> pushed = Send(*core_, Push(1, 10, 0));
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(pushed->version(), 1);
  EXPECT_EQ(pushed->staleness(), 0);
  EXPECT_FLOAT_EQ(pushed->learning_rate(), 0.1f);
  EXPECT_FALSE(pushed->duplicate());
  const Pulled second = PullAll(*core_);
  EXPECT_EQ(second.version, 1);
  EXPECT_NE(second.weights, first.weights);

  const ps::v1::StatusResponse status = core_->GetStatus();
  EXPECT_EQ(status.global_step(), 1);
  EXPECT_EQ(status.examples_seen(), 16);
  EXPECT_EQ(status.pushes_applied(), 1);
  EXPECT_EQ(status.num_workers(), 2);
  ASSERT_EQ(status.workers_size(), 2);
  EXPECT_EQ(status.workers(1).pushes(), 1);
  EXPECT_EQ(status.workers(1).examples(), 16);
  EXPECT_EQ(status.workers(1).steps(), 7);
  EXPECT_DOUBLE_EQ(status.workers(1).images_per_sec(), 99.5);
  EXPECT_EQ(status.workers(0).seconds_since_last_seen(), -1);
  EXPECT_GT(status.bytes_in(), 17 * 4);
  EXPECT_GT(status.bytes_out(), 2 * 17 * 4);
}

TEST_F(ParameterServerCoreTest, ASixteenBitPushAppliesWhatItsDecodedValuesWouldInFloat32) {
  std::vector<float> gradients(17);
  for (int i = 0; i < 17; ++i) gradients[i] = 0.013f * (i - 8) + 1e-5f * i;
  for (WireDtype dtype : {WireDtype::kBfloat16, WireDtype::kFloat16}) {
    std::string encoded(17 * 2, '\0');
    EncodeFloats(dtype, gradients, encoded.data());
    std::vector<float> decoded(17);
    DecodeFloats(dtype, encoded.data(), absl::MakeSpan(decoded));
    ASSERT_NE(decoded, gradients);  // the rounding shows

    std::unique_ptr<ParameterServerCore> compressed = MakeCore(1001);
    std::unique_ptr<ParameterServerCore> exact = MakeCore(1001);
    ps::v1::PushRequest push = Push(1, 10, 0);
    push.set_gradients_dtype(ToPayloadDtype(dtype));
    push.set_gradients(encoded);
    ASSERT_TRUE(Send(*compressed, push).ok());
    ps::v1::PushRequest reference = Push(1, 10, 0);
    reference.set_gradients(Bytes(decoded));
    ASSERT_TRUE(Send(*exact, reference).ok());
    const Pulled after_compressed = PullAll(*compressed);
    const Pulled after_exact = PullAll(*exact);
    EXPECT_EQ(after_compressed.weights, after_exact.weights) << WireDtypeName(dtype);
    EXPECT_EQ(after_compressed.state, after_exact.state);
    EXPECT_EQ(after_compressed.version, 1);
    // What it cost on the wire: 2 bytes a gradient instead of 4, and 2 for the dtype field.
    EXPECT_EQ(compressed->GetStatus().bytes_in() + 17 * 2 - 2, exact->GetStatus().bytes_in());
  }
}

TEST_F(ParameterServerCoreTest, DelayCompensationBacksUpTrainingPullsAndCorrectsPushes) {
  std::unique_ptr<ParameterServerCore> dc = MakeCore(1002, StalenessPolicy::kDelayCompensation);
  std::unique_ptr<ParameterServerCore> plain = MakeCore(1003, StalenessPolicy::kApply);
  ASSERT_NE(dc, nullptr);
  ASSERT_NE(plain, nullptr);
  ps::v1::PullRequest training = PullRequest(0);
  training.set_include_state(false);
  training.set_training(true);
  std::vector<float> weights(17);
  // The same requests to both servers; only the dc one corrects worker 0's stale push.
  for (ParameterServerCore* core : {dc.get(), plain.get()}) {
    auto send = [&](const ps::v1::PushRequest& push) {
      ps::v1::PushRequest request = push;
      request.set_server_incarnation(core->incarnation());
      return Send(*core, request);
    };
    // Worker 0 pulls version 0 to train on and, overlapping, version 1 while worker 1's
    // pushes land; then it evaluates version 2 (not a training pull: no backup).
    ASSERT_EQ(*core->Pull(Caller::Trusted(), training, absl::MakeSpan(weights), {}), 0);
    ASSERT_TRUE(send(Push(1, 1, 0, 0.5f)).ok());
    ASSERT_EQ(*core->Pull(Caller::Trusted(), training, absl::MakeSpan(weights), {}), 1);
    ASSERT_TRUE(send(Push(1, 2, 1, -0.25f)).ok());
    Pulled evaluated;
    ASSERT_EQ(*core->Pull(Caller::Trusted(), PullRequest(0), absl::MakeSpan(evaluated.weights),
                          absl::MakeSpan(evaluated.state)),
              2);
    // Its push computed from version 0 (two versions stale) finds the v0 backup.
    absl::StatusOr<ps::v1::PushResponse> pushed = send(Push(0, 1, 0, 2.0f));
    ASSERT_TRUE(pushed.ok()) << pushed.status();
    EXPECT_EQ(pushed->staleness(), 2);
  }
  const ps::v1::StatusResponse status = dc->GetStatus();
  EXPECT_EQ(status.pushes_applied(), 3);
  EXPECT_EQ(status.pushes_compensated(), 1);    // worker 0's
  EXPECT_EQ(status.pushes_uncompensated(), 2);  // worker 1 made no training pull
  EXPECT_EQ(plain->GetStatus().pushes_compensated(), 0);
  EXPECT_EQ(plain->GetStatus().pushes_uncompensated(), 0);
  EXPECT_NE(PullAll(*dc).weights, PullAll(*plain).weights);
  EXPECT_EQ(dc->shard().backup_floats(), WeightBackups::kPullsPerWorker * 17);  // worker 0's

  // A tool's pull is never a training pull.
  ps::v1::PullRequest tool = training;
  tool.set_worker_id(kToolWorkerId);
  absl::StatusOr<int64_t> refused = dc->Pull(Caller::Trusted(), tool, absl::MakeSpan(weights), {});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("training: a tool's pull"));
}

TEST_F(ParameterServerCoreTest, TheWeightAverageIsPulledOnRequestWhenKept) {
  ps::v1::PullRequest average = PullRequest();
  average.set_weight_average(true);
  Pulled pulled;
  absl::StatusOr<int64_t> refused = core_->Pull(
      Caller::Trusted(), average, absl::MakeSpan(pulled.weights), absl::MakeSpan(pulled.state));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(core_->GetStatus().weight_ema_decay(), 0.0f);

  std::unique_ptr<ParameterServerCore> core =
      MakeCore(1002, StalenessPolicy::kApply, /*weight_ema_decay=*/0.5f);
  ASSERT_NE(core, nullptr);
  EXPECT_EQ(core->GetStatus().weight_ema_decay(), 0.5f);
  const Pulled initial = PullAll(*core);
  ps::v1::PushRequest push = Push(0, 1, 0);
  push.set_server_incarnation(core->incarnation());
  ASSERT_TRUE(Send(*core, push).ok());
  const Pulled raw = PullAll(*core);
  absl::StatusOr<int64_t> version = core->Pull(
      Caller::Trusted(), average, absl::MakeSpan(pulled.weights), absl::MakeSpan(pulled.state));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 1);
  EXPECT_EQ(pulled.state, raw.state);  // the moving statistics are the same either way
  // The first update's decay is min(0.5, 1/10): 0.1 * initial + 0.9 * weights.
  for (size_t i = 0; i < pulled.weights.size(); ++i) {
    EXPECT_NEAR(pulled.weights[i], 0.1f * initial.weights[i] + 0.9f * raw.weights[i], 1e-6f) << i;
  }
  // The average is checkpointed with the rest of the state.
  std::unique_ptr<ParameterServerCore> restored =
      MakeCore(1003, StalenessPolicy::kApply, /*weight_ema_decay=*/0.5f);
  ASSERT_NE(restored, nullptr);
  ASSERT_TRUE(restored->RestoreState(core->ExportState()).ok());
  Pulled again;
  ASSERT_TRUE(restored
                  ->Pull(Caller::Trusted(), average, absl::MakeSpan(again.weights),
                         absl::MakeSpan(again.state))
                  .ok());
  EXPECT_EQ(again.weights, pulled.weights);
}

TEST_F(ParameterServerCoreTest, ARetryIsAnsweredFromTheLedgerAndAppliedOnce) {
  ASSERT_TRUE(Send(*core_, Push(1, 10, 0)).ok());
  const Pulled once = PullAll(*core_);
  absl::StatusOr<ps::v1::PushResponse> retry = Send(*core_, Push(1, 10, 0));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->duplicate());
  EXPECT_EQ(retry->version(), 1);
  EXPECT_EQ(PullAll(*core_).weights, once.weights);
  // The same request id from the other worker is another push.
  absl::StatusOr<ps::v1::PushResponse> other = Send(*core_, Push(0, 10, 1));
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->duplicate());
  EXPECT_EQ(other->version(), 2);
  const ps::v1::StatusResponse status = core_->GetStatus();
  EXPECT_EQ(status.pushes_duplicate(), 1);
  EXPECT_EQ(status.pushes_applied(), 2);
  EXPECT_EQ(status.workers(1).pushes(), 1);
}

TEST_F(ParameterServerCoreTest, RefusedPushesChangeNothingAndAreCounted) {
  ASSERT_TRUE(Send(*core_, Push(0, 1, 0)).ok());
  const CoreState before = core_->ExportState();
  std::vector<ps::v1::PushRequest> refused;
  refused.push_back(Push(2, 2, 1));  // not a member
  refused.push_back(Push(-1, 3, 1));
  refused.push_back(Push(0, 4, 1));
  refused.back().set_example_count(int64_t{1} << 62);  // used to overflow examples seen
  refused.push_back(Push(0, 5, 1, 1e30f));  // used to make the rms slot inf
  refused.push_back(Push(0, 6, 5));  // from the future
  refused.push_back(Push(0, 7, 1));
  refused.back().set_gradients("abc");
  refused.push_back(Push(0, 8, 1));
  refused.back().set_plan_fingerprint(plan_->fingerprint() + 1);
  for (const ps::v1::PushRequest& push : refused) {
    EXPECT_FALSE(Send(*core_, push).ok()) << push.ShortDebugString().substr(0, 200);
  }
  const CoreState after = core_->ExportState();
  EXPECT_EQ(after.shard.version, before.shard.version);
  EXPECT_EQ(after.shard.examples_seen, before.shard.examples_seen);
  ASSERT_EQ(after.shard.tensors.size(), before.shard.tensors.size());
  for (size_t i = 0; i < after.shard.tensors.size(); ++i) {
    EXPECT_EQ(after.shard.tensors[i].values, before.shard.tensors[i].values);
  }
  const ps::v1::StatusResponse status = core_->GetStatus();
  EXPECT_EQ(status.pushes_invalid(), static_cast<int64_t>(refused.size()));
  EXPECT_EQ(status.workers_size(), 2);  // unknown ids were not recorded
  EXPECT_EQ(status.workers(0).pushes(), 1);
  EXPECT_TRUE(CheckCoreState(after, plan_->state_layout()).ok());
  // A refused request id is not remembered: sent again correctly, it is applied.
  absl::StatusOr<ps::v1::PushResponse> again = Send(*core_, Push(0, 5, 1));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->duplicate());
}

TEST_F(ParameterServerCoreTest, APushFromAnEarlierRunIsAbortedAndCountedApart) {
  ps::v1::PushRequest push = Push(0, 1, 0);
  push.set_server_incarnation(999);
  const absl::Status status = Send(*core_, push).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(core_->GetStatus().pushes_rejected_restarted(), 1);
  EXPECT_EQ(core_->GetStatus().pushes_invalid(), 0);
  EXPECT_EQ(core_->GetStatus().global_step(), 0);
}

TEST_F(ParameterServerCoreTest, TooStalePushesAreAbortedUnderTheRejectPolicy) {
  core_ = MakeCore(1001, StalenessPolicy::kReject);
  for (uint64_t id = 1; id <= 2; ++id) ASSERT_TRUE(Send(*core_, Push(0, id, 0)).ok());
  const absl::Status stale = Send(*core_, Push(1, 3, 0)).status();  // staleness 2 > 1
  EXPECT_EQ(stale.code(), absl::StatusCode::kAborted);
  const ps::v1::StatusResponse status = core_->GetStatus();
  EXPECT_EQ(status.pushes_rejected_stale(), 1);
  EXPECT_EQ(status.staleness_max(), 1);
  EXPECT_EQ(status.workers(1).pushes(), 0);
}

TEST_F(ParameterServerCoreTest, StatusCarriesTheStalenessDistributionWithItsTailFolded) {
  // Every push computed from version 0: the n-th applied one is n - 1 versions stale.
  const int pushes = kMaxStalenessCounts + 6;
  for (int i = 0; i < pushes; ++i) {
    ASSERT_TRUE(Send(*core_, Push(i % 2, static_cast<uint64_t>(i + 1), 0)).ok()) << i;
  }
  ASSERT_TRUE(Send(*core_, Push(0, 1000, 0)).ok());  // staleness `pushes` once more
  const ps::v1::StatusResponse status = core_->GetStatus();
  ASSERT_EQ(status.staleness_counts_size(), kMaxStalenessCounts);
  int64_t total = 0;
  for (int i = 0; i < kMaxStalenessCounts; ++i) {
    EXPECT_EQ(status.staleness_counts(i).staleness(), i);
    total += status.staleness_counts(i).pushes();
  }
  EXPECT_EQ(status.staleness_counts(0).pushes(), 1);
  // The last entry: staleness 63 and every staler push (64 .. pushes - 1, and `pushes`).
  EXPECT_EQ(status.staleness_counts(kMaxStalenessCounts - 1).pushes(),
            pushes - (kMaxStalenessCounts - 1) + 1);
  EXPECT_EQ(total, status.pushes_applied());
}

TEST_F(ParameterServerCoreTest, OnlyTheChiefEndsTheTrainingOrTheLastMemberDoes) {
  EXPECT_EQ(core_->Finish(Caller::Trusted(), Finish(1, true)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(core_->finishing());
  ASSERT_TRUE(core_->Finish(Caller::Trusted(), Finish(1, false)).ok());
  EXPECT_FALSE(core_->finishing());
  EXPECT_TRUE(core_->GetStatus().workers(1).finished());
  ASSERT_TRUE(
      core_->Finish(Caller::Trusted(), Finish(0, false)).ok());  // every member has finished
  EXPECT_TRUE(core_->finishing());

  std::unique_ptr<ParameterServerCore> chief = MakeCore(1);
  ASSERT_TRUE(chief->Finish(Caller::Trusted(), Finish(0, true)).ok());
  EXPECT_TRUE(chief->WaitForFinishWithTimeout(absl::ZeroDuration()));
  EXPECT_TRUE(chief->GetStatus().training_complete());
  EXPECT_EQ(chief->Finish(Caller::Trusted(), Finish(5, false)).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ParameterServerCoreTest, TheChiefsEvaluationIsKeptAndOthersAreRefused) {
  ps::v1::EvaluationReport report;
  report.set_plan_fingerprint(plan_->fingerprint());
  report.set_worker_id(0);
  report.set_global_step(4);
  report.set_examples(200);
  report.set_correct(150);
  report.set_loss(0.7);
  ASSERT_TRUE(core_->ReportEvaluation(Caller::Trusted(), report).ok());
  report.set_worker_id(1);
  report.set_correct(200);
  EXPECT_EQ(core_->ReportEvaluation(Caller::Trusted(), report).code(),
            absl::StatusCode::kInvalidArgument);
  ps::v1::StatusResponse status = core_->GetStatus();
  EXPECT_DOUBLE_EQ(status.eval_accuracy(), 0.75);
  EXPECT_EQ(status.eval_step(), 4);
  EXPECT_GT(status.eval_unix_seconds(), 0);
  EXPECT_EQ(status.eval_average_examples(), 0);  // no weight average evaluated

  report.set_worker_id(0);
  report.set_correct(150);
  report.set_average_examples(200);
  report.set_average_correct(160);
  report.set_average_loss(0.6);
  ASSERT_TRUE(core_->ReportEvaluation(Caller::Trusted(), report).ok());
  status = core_->GetStatus();
  EXPECT_DOUBLE_EQ(status.eval_accuracy(), 0.75);
  EXPECT_EQ(status.eval_average_examples(), 200);
  EXPECT_DOUBLE_EQ(status.eval_average_accuracy(), 0.8);
  EXPECT_DOUBLE_EQ(status.eval_average_loss(), 0.6);
}

TEST_F(ParameterServerCoreTest, TheChiefsClassNamesAreKeptCheckpointedAndNeverChanged) {
  ps::v1::EvaluationReport report;
  report.set_plan_fingerprint(plan_->fingerprint());
  report.set_worker_id(0);
  report.set_global_step(4);
  report.set_examples(10);
  report.set_correct(5);
  for (const char* name : {"cat", "dog"}) report.add_class_names(name);
  ASSERT_TRUE(core_->ReportEvaluation(Caller::Worker(0), report).ok());
  EXPECT_THAT(core_->GetStatus().class_names(), ElementsAre("cat", "dog"));
  EXPECT_THAT(core_->ExportState().ledger.class_names, ElementsAre("cat", "dog"));
  // The same names again, and a report without names, change nothing.
  ASSERT_TRUE(core_->ReportEvaluation(Caller::Worker(0), report).ok());
  report.clear_class_names();
  report.set_global_step(5);
  ASSERT_TRUE(core_->ReportEvaluation(Caller::Worker(0), report).ok());
  EXPECT_THAT(core_->GetStatus().class_names(), ElementsAre("cat", "dog"));

  // Other names: refused naming both lists, and the evaluation is not recorded either.
  for (const char* name : {"dog", "cat"}) report.add_class_names(name);
  report.set_global_step(6);
  const absl::Status changed = core_->ReportEvaluation(Caller::Worker(0), report);
  EXPECT_EQ(changed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(changed.message(),
              AllOf(HasSubstr("class names [dog, cat]"), HasSubstr("already keeps [cat, dog]")));
  EXPECT_EQ(core_->GetStatus().eval_step(), 5);

  // A restored server keeps them, and refuses others as well.
  std::unique_ptr<ParameterServerCore> restored = MakeCore(2002);
  ASSERT_TRUE(restored->RestoreState(core_->ExportState()).ok());
  EXPECT_THAT(restored->GetStatus().class_names(), ElementsAre("cat", "dog"));
  EXPECT_EQ(restored->ReportEvaluation(Caller::Worker(0), report).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ParameterServerCoreClassNamesTest, AModelsServerWantsOneNamePerClass) {
  MobileNetConfig model;
  model.alpha = 0.25f;
  model.resolution = 32;
  model.input_channels = 1;
  model.num_classes = 3;
  absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(model, 1);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ParameterShardConfig config;
  config.learning_rate.examples_per_epoch = 100;
  absl::StatusOr<std::unique_ptr<ParameterServerCore>> core =
      ParameterServerCore::Create(*plan, config, CoreOptions());
  ASSERT_TRUE(core.ok()) << core.status();
  ps::v1::EvaluationReport report;
  report.set_plan_fingerprint(plan->fingerprint());
  report.set_model(plan->model());
  report.set_num_shards(1);
  for (const char* name : {"cat", "dog"}) report.add_class_names(name);
  const absl::Status refused = (*core)->ReportEvaluation(Caller::Worker(0), report);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("2 class names for a model of 3 classes"));
  EXPECT_EQ((*core)->GetStatus().class_names_size(), 0);
  report.add_class_names("bird");
  EXPECT_TRUE((*core)->ReportEvaluation(Caller::Worker(0), report).ok());
  EXPECT_EQ((*core)->GetStatus().class_names_size(), 3);
}

TEST_F(ParameterServerCoreTest, ExportedStateRestoresShardAndLedgerTogether) {
  ASSERT_TRUE(Send(*core_, Push(0, 1, 0)).ok());
  ASSERT_TRUE(Send(*core_, Push(1, 2, 1)).ok());
  ASSERT_TRUE(Send(*core_, Push(1, 3, 1)).ok());
  ASSERT_TRUE(core_->Finish(Caller::Trusted(), Finish(1, false)).ok());
  const CoreState exported = core_->ExportState();
  EXPECT_TRUE(CheckCoreState(exported, plan_->state_layout()).ok());

  std::unique_ptr<ParameterServerCore> restored = MakeCore(2002);
  ASSERT_TRUE(restored->RestoreState(exported).ok());
  const ps::v1::StatusResponse status = restored->GetStatus();
  EXPECT_EQ(status.global_step(), 3);
  EXPECT_EQ(status.examples_seen(), 48);
  EXPECT_EQ(status.workers(0).pushes(), 1);
  EXPECT_EQ(status.workers(1).pushes(), 2);
  EXPECT_EQ(status.workers(1).examples(), 32);
  EXPECT_TRUE(status.workers(1).finished());
  EXPECT_EQ(PullAll(*restored).weights, PullAll(*core_).weights);
  EXPECT_FALSE(restored->finishing());  // the end of training is an event of a run

  // An inconsistent state is refused whole: neither the shard nor the ledger changes.
  CoreState inconsistent = exported;
  inconsistent.ledger.workers[0].pushes = 5;
  std::unique_ptr<ParameterServerCore> fresh = MakeCore(3003);
  const absl::Status refused = fresh->RestoreState(inconsistent);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("account for 7 pushes"));
  EXPECT_EQ(fresh->GetStatus().global_step(), 0);
  EXPECT_EQ(fresh->GetStatus().workers(0).pushes(), 0);
}

TEST_F(ParameterServerCoreTest, ToolsPullAndMembersAreSeenButStrangersAreNot) {
  Pulled pulled;
  EXPECT_TRUE(core_
                  ->Pull(Caller::Trusted(), PullRequest(1), absl::MakeSpan(pulled.weights),
                         absl::MakeSpan(pulled.state))
                  .ok());
  EXPECT_GE(core_->GetStatus().workers(1).seconds_since_last_seen(), 0);
  const absl::Status stranger =
      core_
          ->Pull(Caller::Trusted(), PullRequest(9), absl::MakeSpan(pulled.weights),
                 absl::MakeSpan(pulled.state))
          .status();
  EXPECT_EQ(stranger.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(core_->GetStatus().workers_size(), 2);
}

TEST(ParameterServerCoreCreateTest, RefusesIndexesOutsideThePlanAndEmptyClusters) {
  absl::StatusOr<ShardingPlan> plan =
      ShardingPlan::CreateForLayouts(TinyParameters(), TinyState(), 2, "tiny");
  ASSERT_TRUE(plan.ok());
  ParameterShardConfig config;
  config.learning_rate.examples_per_epoch = 10;
  CoreOptions options;
  options.shard_index = 2;
  EXPECT_THAT(ParameterServerCore::Create(*plan, config, options).status().message(),
              HasSubstr("parameter server 2 of a plan for 2"));
  options.shard_index = 1;
  options.num_workers = 0;
  EXPECT_THAT(ParameterServerCore::Create(*plan, config, options).status().message(),
              HasSubstr("a cluster of 0 workers"));
  options.num_workers = 1;
  absl::StatusOr<std::unique_ptr<ParameterServerCore>> core =
      ParameterServerCore::Create(*plan, config, options);
  ASSERT_TRUE(core.ok());
  EXPECT_NE((*core)->incarnation(), 0u);
  EXPECT_EQ((*core)->identity().shard_index, 1);
}

TEST_F(ParameterServerCoreTest, DeniedRequestsChangeNothingAndAreCountedApart) {
  ASSERT_TRUE(Send(*core_, Push(1, 1, 0)).ok());
  const Pulled before = PullAll(*core_);
  const CoreState state_before = core_->ExportState();
  ps::v1::PushResponse response;
  ps::v1::EvaluationReport report;
  report.set_plan_fingerprint(plan_->fingerprint());
  report.set_examples(10);
  report.set_correct(10);

  EXPECT_EQ(core_->Push(Caller::Worker(1), Push(0, 2, 1), response).code(),
            absl::StatusCode::kPermissionDenied);  // as the chief
  EXPECT_EQ(core_->Push(Caller::Monitor(), Push(1, 3, 1), response).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(core_->Finish(Caller::Worker(1), Finish(1, true)).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(core_->Finish(Caller::Monitor(), Finish(0, true)).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(core_->ReportEvaluation(Caller::Worker(1), report).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(core_->ReportEvaluation(Caller::Monitor(), report).code(),
            absl::StatusCode::kPermissionDenied);
  core_->CountUnauthenticated();

  EXPECT_FALSE(core_->finishing());
  const Pulled after = PullAll(*core_);
  EXPECT_EQ(after.version, before.version);
  EXPECT_EQ(after.weights, before.weights);
  const CoreState state_after = core_->ExportState();
  EXPECT_EQ(state_after.ledger.workers[0].pushes, state_before.ledger.workers[0].pushes);
  EXPECT_EQ(state_after.ledger.workers[1].pushes, 1);
  EXPECT_EQ(state_after.ledger.workers[1].finished, false);
  const ps::v1::StatusResponse status = core_->GetStatus();
  EXPECT_EQ(status.requests_denied(), 6);
  EXPECT_EQ(status.requests_unauthenticated(), 1);
  EXPECT_EQ(status.pushes_invalid(), 0);
  EXPECT_EQ(status.eval_examples(), 0);  // no evaluation was recorded
  // A denied request is not contact: worker 0, named by worker 1's push, was never heard.
  EXPECT_EQ(status.workers(0).seconds_since_last_seen(), -1);
}

// --sync_replicas: the two servers of a two-server plan of the tiny model, for a cluster
// of 3 workers aggregating 2 gradients a step. Plain SGD at a constant 0.5 and moving
// statistics decaying by 0.5 a push, so that a step is exactly w -= 0.5 * mean(g) and
// m = 0.25 m + 0.75 mean(b) (0.5^2: a step of 2 pushes decays as 2 pushes would).
class SyncParameterServerCoreTest : public ::testing::Test {
 protected:
  static constexpr float kLearningRate = 0.5f;
  static constexpr int64_t kExamples = 8;  // per push

  void SetUp() override {
    absl::StatusOr<ShardingPlan> plan =
        ShardingPlan::CreateForLayouts(TinyParameters(), TinyState(), 2, "tiny");
    ASSERT_TRUE(plan.ok()) << plan.status();
    plan_ = std::make_unique<ShardingPlan>(*plan);
    for (int i = 0; i < 2; ++i) {
      cores_.push_back(MakeCore(i, /*replicas_to_aggregate=*/2));
      ASSERT_NE(cores_.back(), nullptr);
    }
  }

  std::unique_ptr<ParameterServerCore> MakeCore(int shard_index, int replicas_to_aggregate,
                                                bool sync = true, int max_workers = 0) const {
    ParameterShardConfig config;
    config.seed = 3;
    config.optimizer.kind = OptimizerKind::kSgd;
    config.learning_rate.initial_learning_rate = kLearningRate;
    config.learning_rate.decay_factor = 1.0f;
    config.learning_rate.examples_per_epoch = 1000;
    config.moving_average_decay = 0.5f;
    CoreOptions options;
    options.shard_index = shard_index;
    options.num_workers = 3;
    options.incarnation = 500 + shard_index;
    options.sync.enabled = sync;
    options.sync.replicas_to_aggregate = replicas_to_aggregate;
    options.max_workers = max_workers;
    absl::StatusOr<std::unique_ptr<ParameterServerCore>> core =
        ParameterServerCore::Create(*plan_, config, options);
    EXPECT_TRUE(core.ok()) << core.status();
    return core.ok() ? std::move(*core) : nullptr;
  }

  struct Pulled {
    int64_t version = -1;
    std::vector<float> weights, state;
    SyncPullInfo sync;
  };
  // A member's training pull of server `core` (with `decision` relayed, to another server;
  // with `min_sync_step`, to server 0).
  Pulled PullFrom(ParameterServerCore& core, int32_t worker, int64_t min_sync_step = 0,
                  const std::optional<ps::v1::SyncDecision>& decision = std::nullopt) const {
    ps::v1::PullRequest request;
    request.set_plan_fingerprint(plan_->fingerprint());
    request.set_shard_index(core.identity().shard_index);
    request.set_worker_id(worker);
    request.set_include_state(core.state_count() > 0);
    request.set_training(true);
    if (min_sync_step > 0) request.set_min_sync_step(min_sync_step);
    if (decision.has_value()) *request.mutable_sync_decision() = *decision;
    Pulled pulled;
    pulled.weights.assign(core.parameter_count(), kUntouched);
    pulled.state.assign(core.state_count(), kUntouched);
    absl::StatusOr<int64_t> version =
        core.Pull(Caller::Trusted(), request, absl::MakeSpan(pulled.weights),
                  absl::MakeSpan(pulled.state), &pulled.sync);
    EXPECT_TRUE(version.ok()) << version.status();
    pulled.version = version.value_or(-1);
    return pulled;
  }

  // Worker `worker`'s gradients for server `core` at `step`: exact binary fractions, so
  // that averages of two are exact.
  static std::vector<float> Gradients(const ParameterServerCore& core, int32_t worker,
                                      int64_t step) {
    std::vector<float> g(core.parameter_count());
    for (size_t i = 0; i < g.size(); ++i) {
      g[i] = 0.25f * static_cast<float>(worker + 1) - 0.125f * static_cast<float>(i) +
             0.5f * static_cast<float>(step);
    }
    return g;
  }
  static std::vector<float> Stats(const ParameterServerCore& core, int32_t worker) {
    return std::vector<float>(core.state_count(), 1.0f + 2.0f * static_cast<float>(worker));
  }

  ps::v1::PushRequest PushMessage(const ParameterServerCore& core, int32_t worker,
                                  std::optional<int64_t> sync_step, int64_t from_version) const {
    ps::v1::PushRequest push;
    push.set_plan_fingerprint(plan_->fingerprint());
    push.set_shard_index(core.identity().shard_index);
    push.set_worker_id(worker);
    push.set_request_id(1000 * (worker + 1) + sync_step.value_or(0));
    push.set_computed_from_version(from_version);
    push.set_example_count(kExamples);
    push.set_gradients(Bytes(Gradients(core, worker, sync_step.value_or(0))));
    push.set_batch_stats(Bytes(Stats(core, worker)));
    push.set_server_incarnation(core.incarnation());
    if (sync_step.has_value()) push.set_sync_step(*sync_step);
    return push;
  }
  absl::StatusOr<ps::v1::PushResponse> PushTo(ParameterServerCore& core, int32_t worker,
                                              std::optional<int64_t> sync_step,
                                              int64_t from_version) const {
    ps::v1::PushResponse response;
    const absl::Status status =
        core.Push(Caller::Trusted(), PushMessage(core, worker, sync_step, from_version), response);
    if (!status.ok()) return status;
    return response;
  }

  ps::v1::FinishRequest Finish(int32_t worker_id) const {
    ps::v1::FinishRequest finish;
    finish.set_plan_fingerprint(plan_->fingerprint());
    finish.set_worker_id(worker_id);
    return finish;
  }

  // w - 0.5 * (g_a + g_b) / 2 for one server.
  static std::vector<float> Stepped(const std::vector<float>& w, const std::vector<float>& a,
                                    const std::vector<float>& b) {
    std::vector<float> out(w.size());
    for (size_t i = 0; i < w.size(); ++i) out[i] = w[i] - kLearningRate * ((a[i] + b[i]) / 2);
    return out;
  }

  static constexpr float kUntouched = 12345.0f;
  std::unique_ptr<ShardingPlan> plan_;
  std::vector<std::unique_ptr<ParameterServerCore>> cores_;
};

TEST_F(SyncParameterServerCoreTest, ExactlyTwoGradientsCloseAStepAndTheBackupIsDropped) {
  ParameterServerCore& leader = *cores_[0];
  const Pulled before = PullFrom(leader, 0);
  EXPECT_EQ(before.version, 0);
  EXPECT_EQ(before.sync.step, 0);
  EXPECT_FALSE(before.sync.decision.has_value());
  EXPECT_TRUE(before.sync.reached);

  absl::StatusOr<ps::v1::PushResponse> first = PushTo(leader, 1, 0, 0);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->sync_pending());
  EXPECT_EQ(first->version(), 0);
  ps::v1::StatusResponse status = leader.GetStatus();
  EXPECT_TRUE(status.sync_replicas());
  EXPECT_EQ(status.replicas_to_aggregate(), 2);
  EXPECT_EQ(status.sync_steps(), 0);
  EXPECT_EQ(status.sync_gradients_needed(), 2);
  EXPECT_EQ(status.sync_gradients_pending(), 1);
  EXPECT_EQ(status.global_step(), 0);
  EXPECT_EQ(PullFrom(leader, 0).weights, before.weights);  // nothing applied yet

  absl::StatusOr<ps::v1::PushResponse> second = PushTo(leader, 0, 0, 0);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->version(), 2);
  status = leader.GetStatus();
  EXPECT_EQ(status.sync_steps(), 1);
  EXPECT_EQ(status.global_step(), 2);  // one update counting both pushes
  EXPECT_EQ(status.examples_seen(), 2 * kExamples);
  EXPECT_EQ(status.pushes_applied(), 2);
  EXPECT_EQ(status.sync_gradients_pending(), 0);
  EXPECT_EQ(status.sync_pushes_dropped(), 0);
  EXPECT_EQ(status.sync_steps_incomplete(), 0);
  EXPECT_EQ(status.workers(0).pushes(), 1);
  EXPECT_EQ(status.workers(1).pushes(), 1);
  EXPECT_EQ(status.workers(1).examples(), kExamples);
  EXPECT_EQ(status.workers(2).pushes(), 0);

  const Pulled after = PullFrom(leader, 2);
  EXPECT_EQ(after.version, 2);
  EXPECT_EQ(after.sync.step, 1);
  ASSERT_TRUE(after.sync.decision.has_value());
  EXPECT_EQ(after.sync.decision->step(), 0);
  EXPECT_THAT(after.sync.decision->worker_ids(), ElementsAre(1, 0));  // arrival order
  EXPECT_THAT(after.sync.decision->examples(), ElementsAre(kExamples, kExamples));
  const std::vector<float> expected =
      Stepped(before.weights, Gradients(leader, 0, 0), Gradients(leader, 1, 0));
  ASSERT_EQ(after.weights.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_FLOAT_EQ(after.weights[i], expected[i]) << i;
  }
  // Statistics: 0.25 * m0 + 0.75 * mean(1, 3).
  for (size_t i = 0; i < after.state.size(); ++i) {
    EXPECT_FLOAT_EQ(after.state[i], 0.25f * before.state[i] + 0.75f * 2.0f) << i;
  }

  // The backup's gradients for the closed step are dropped and change nothing.
  absl::StatusOr<ps::v1::PushResponse> late = PushTo(leader, 2, 0, 0);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(late.status().message(), HasSubstr("worker 2"));
  status = leader.GetStatus();
  EXPECT_EQ(status.sync_pushes_dropped(), 1);
  EXPECT_EQ(status.sync_steps(), 1);
  EXPECT_EQ(status.global_step(), 2);
  EXPECT_EQ(PullFrom(leader, 2).weights, after.weights);
}

TEST_F(SyncParameterServerCoreTest, APushForAStepServerZeroHasNotReachedIsRefused) {
  absl::StatusOr<ps::v1::PushResponse> ahead = PushTo(*cores_[0], 0, 1, 0);
  EXPECT_EQ(ahead.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ahead.status().message(), HasSubstr("step 1"));
  EXPECT_EQ(cores_[0]->GetStatus().sync_gradients_pending(), 0);
  EXPECT_EQ(cores_[0]->GetStatus().pushes_invalid(), 1);
  // Not counted: worker 0 and 1 at step 0 are still two.
  ASSERT_TRUE(PushTo(*cores_[0], 0, 0, 0).ok());
  EXPECT_EQ(cores_[0]->GetStatus().sync_steps(), 0);
  ASSERT_TRUE(PushTo(*cores_[0], 1, 0, 0).ok());
  EXPECT_EQ(cores_[0]->GetStatus().sync_steps(), 1);
}

TEST_F(SyncParameterServerCoreTest, APullWaitingForALaterStepReadsNothing) {
  ParameterServerCore& leader = *cores_[0];
  ASSERT_TRUE(PushTo(leader, 0, 0, 0).ok());
  const Pulled waiting = PullFrom(leader, 0, /*min_sync_step=*/1);
  EXPECT_FALSE(waiting.sync.reached);
  EXPECT_EQ(waiting.sync.step, 0);
  EXPECT_EQ(waiting.version, 0);
  EXPECT_EQ(waiting.weights, std::vector<float>(leader.parameter_count(), kUntouched));
  EXPECT_EQ(waiting.state, std::vector<float>(leader.state_count(), kUntouched));

  ASSERT_TRUE(PushTo(leader, 2, 0, 0).ok());
  const Pulled reached = PullFrom(leader, 0, /*min_sync_step=*/1);
  EXPECT_TRUE(reached.sync.reached);
  EXPECT_EQ(reached.sync.step, 1);
  EXPECT_EQ(reached.version, 2);
  EXPECT_NE(reached.weights[0], kUntouched);
  // Two steps ahead: still not there.
  EXPECT_FALSE(PullFrom(leader, 0, /*min_sync_step=*/2).sync.reached);
}

TEST_F(SyncParameterServerCoreTest, AnotherServerAppliesExactlyTheWorkersServerZeroNamed) {
  ParameterServerCore& leader = *cores_[0];
  ParameterServerCore& other = *cores_[1];
  const Pulled before = PullFrom(other, 0);
  // Every worker's gradients reach server 1; server 0 counts 2 then 0, and 1 comes late.
  for (int32_t worker : {0, 1, 2}) {
    absl::StatusOr<ps::v1::PushResponse> held = PushTo(other, worker, 0, 0);
    ASSERT_TRUE(held.ok()) << held.status();
    EXPECT_TRUE(held->sync_pending());
  }
  EXPECT_EQ(other.GetStatus().global_step(), 0);  // server 1 decides nothing
  EXPECT_EQ(other.GetStatus().sync_steps(), 0);
  ASSERT_TRUE(PushTo(leader, 2, 0, 0).ok());
  ASSERT_TRUE(PushTo(leader, 0, 0, 0).ok());
  EXPECT_EQ(PushTo(leader, 1, 0, 0).status().code(), absl::StatusCode::kAborted);

  const Pulled decided = PullFrom(leader, 1);
  ASSERT_TRUE(decided.sync.decision.has_value());
  EXPECT_THAT(decided.sync.decision->worker_ids(), ElementsAre(2, 0));
  const Pulled after = PullFrom(other, 1, 0, decided.sync.decision);
  EXPECT_EQ(after.version, 2);
  const std::vector<float> expected =
      Stepped(before.weights, Gradients(other, 2, 0), Gradients(other, 0, 0));
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_FLOAT_EQ(after.weights[i], expected[i]) << i;
  }
  for (size_t i = 0; i < after.state.size(); ++i) {
    EXPECT_FLOAT_EQ(after.state[i], 0.25f * before.state[i] + 0.75f * 3.0f) << i;  // mean(5, 1)
  }
  const ps::v1::StatusResponse status = other.GetStatus();
  EXPECT_EQ(status.sync_steps(), 1);
  EXPECT_EQ(status.examples_seen(), 2 * kExamples);
  EXPECT_EQ(status.sync_steps_incomplete(), 0);
  EXPECT_EQ(status.workers(1).pushes(), 0);
  EXPECT_EQ(status.workers(2).pushes(), 1);

  // The same decision relayed again (another worker's pull) is applied once.
  const Pulled again = PullFrom(other, 2, 0, decided.sync.decision);
  EXPECT_EQ(again.version, 2);
  EXPECT_EQ(again.weights, after.weights);
}

// Worker 2 reads server 0 at step 1 (decision 0) and is slow to pull server 1; meanwhile
// step 1 closes and worker 0 relays decision 1 to server 1. Worker 2's pull then carries
// the older decision 0, which server 1 applied already: it must change nothing.
TEST_F(SyncParameterServerCoreTest, AnOlderDecisionRelayedLateIsNotAppliedAgain) {
  ParameterServerCore& leader = *cores_[0];
  ParameterServerCore& other = *cores_[1];
  for (int32_t worker : {0, 1}) {
    ASSERT_TRUE(PushTo(other, worker, 0, 0).ok());
    ASSERT_TRUE(PushTo(leader, worker, 0, 0).ok());
  }
  const Pulled slow = PullFrom(leader, 2);  // step 1, decision 0
  ASSERT_EQ(slow.sync.step, 1);
  const Pulled fast = PullFrom(leader, 0);
  ASSERT_EQ(PullFrom(other, 0, 0, fast.sync.decision).version, 2);
  for (int32_t worker : {0, 1}) {
    ASSERT_TRUE(PushTo(other, worker, 1, 2).ok());
    ASSERT_TRUE(PushTo(leader, worker, 1, 2).ok());
  }
  const Pulled step2 = PullFrom(leader, 0);  // step 2, decision 1
  ASSERT_EQ(step2.sync.step, 2);
  const Pulled applied = PullFrom(other, 0, 0, step2.sync.decision);
  ASSERT_EQ(applied.version, 4);
  ASSERT_EQ(other.GetStatus().sync_steps(), 2);

  // The late relay of decision 0.
  const Pulled late = PullFrom(other, 2, 0, slow.sync.decision);
  EXPECT_EQ(late.version, 4);
  EXPECT_EQ(late.weights, applied.weights);
  ps::v1::StatusResponse status = other.GetStatus();
  EXPECT_EQ(status.sync_steps(), 2);
  EXPECT_EQ(status.global_step(), leader.GetStatus().global_step());
  EXPECT_EQ(status.examples_seen(), leader.GetStatus().examples_seen());
  EXPECT_EQ(status.sync_steps_incomplete(), 0);
  // And the next relay of decision 1 does not apply step 1's gradients a second time.
  const Pulled next = PullFrom(other, 1, 0, step2.sync.decision);
  EXPECT_EQ(next.version, 4);
  EXPECT_EQ(next.weights, applied.weights);
}

TEST_F(SyncParameterServerCoreTest, AFinishedMemberLowersTheNeedOnlyBelowTheUnfinished) {
  ParameterServerCore& leader = *cores_[0];
  const Pulled before = PullFrom(leader, 0);
  // Worker 1 is alive: once a member is done, the last steps count only live members.
  PullFrom(leader, 1);
  // 2 of 3 with worker 2 finished: 2 unfinished members, still 2 needed.
  ASSERT_TRUE(leader.Finish(Caller::Trusted(), Finish(2)).ok());
  ASSERT_TRUE(PushTo(leader, 0, 0, 0).ok());
  ps::v1::StatusResponse status = leader.GetStatus();
  EXPECT_EQ(status.sync_gradients_needed(), 2);
  EXPECT_EQ(status.sync_steps(), 0);
  // The only other unfinished member's push closes the step.
  ASSERT_TRUE(PushTo(leader, 1, 0, 0).ok());
  status = leader.GetStatus();
  EXPECT_EQ(status.sync_steps(), 1);
  EXPECT_EQ(status.global_step(), 2);

  // Worker 0 counted for step 1, then worker 1 finishes: 1 unfinished member, and the
  // Finish itself closes the step with worker 0's gradients alone.
  const Pulled step1 = PullFrom(leader, 0);
  ASSERT_TRUE(PushTo(leader, 0, 1, 2).ok());
  EXPECT_EQ(leader.GetStatus().sync_steps(), 1);
  ASSERT_TRUE(leader.Finish(Caller::Trusted(), Finish(1)).ok());
  status = leader.GetStatus();
  EXPECT_EQ(status.sync_gradients_needed(), 1);
  EXPECT_EQ(status.sync_steps(), 2);
  EXPECT_EQ(status.global_step(), 3);
  EXPECT_EQ(status.examples_seen(), 3 * kExamples);
  const Pulled after = PullFrom(leader, 0);
  const std::vector<float> g = Gradients(leader, 0, 1);
  for (size_t i = 0; i < g.size(); ++i) {
    EXPECT_FLOAT_EQ(after.weights[i], step1.weights[i] - kLearningRate * g[i]) << i;
  }
  ASSERT_TRUE(after.sync.decision.has_value());
  EXPECT_THAT(after.sync.decision->worker_ids(), ElementsAre(0));
}

TEST_F(SyncParameterServerCoreTest, AnElasticMemberWithoutDataIsNotWaitedFor) {
  std::unique_ptr<ParameterServerCore> leader = MakeCore(0, 2, true, /*max_workers=*/3);
  ps::v1::LeaseRequest lease;
  lease.set_plan_fingerprint(plan_->fingerprint());
  lease.mutable_data()->set_num_examples(10);
  lease.mutable_data()->set_blocks_per_epoch(1);
  lease.mutable_data()->set_epochs(1);
  ps::v1::LeaseResponse response;
  lease.set_worker_id(0);
  ASSERT_TRUE(leader->LeaseData(Caller::Worker(0), lease, response).ok());
  EXPECT_EQ(response.outcome(), ps::v1::LEASE_GRANTED);
  // The only block is worker 0's: worker 1 waits, and has no share to push.
  lease.set_worker_id(1);
  ASSERT_TRUE(leader->LeaseData(Caller::Worker(1), lease, response).ok());
  EXPECT_EQ(response.outcome(), ps::v1::LEASE_WAIT);
  // N = 2, but worker 0 is the only one training (worker 2 never joined): its gradient
  // closes the step alone. A push without last_of_share does not undo the lease's word.
  ASSERT_TRUE(PushTo(*leader, 1, 0, 0).ok());
  ASSERT_TRUE(PushTo(*leader, 0, 0, 0).ok());
  EXPECT_EQ(leader->GetStatus().sync_steps(), 1);
  ASSERT_TRUE(PushTo(*leader, 0, 1, 2).ok());
  const ps::v1::StatusResponse status = leader->GetStatus();
  EXPECT_EQ(status.sync_gradients_needed(), 1);
  EXPECT_EQ(status.sync_steps(), 2);
}

TEST_F(SyncParameterServerCoreTest, TheStepCountSurvivesExportAndRestore) {
  ParameterServerCore& leader = *cores_[0];
  ASSERT_TRUE(PushTo(leader, 0, 0, 0).ok());
  ASSERT_TRUE(PushTo(leader, 1, 0, 0).ok());
  const CoreState exported = leader.ExportState();
  EXPECT_EQ(exported.ledger.sync_steps, 1);
  EXPECT_TRUE(CheckCoreState(exported, plan_->state_layout()).ok());

  std::unique_ptr<ParameterServerCore> restored = MakeCore(0, 2);
  ASSERT_TRUE(restored->RestoreState(exported).ok());
  EXPECT_EQ(restored->GetStatus().sync_steps(), 1);
  EXPECT_EQ(restored->GetStatus().global_step(), 2);
  EXPECT_EQ(restored->ExportState().ledger.sync_steps, 1);
  const Pulled pulled = PullFrom(*restored, 2);
  EXPECT_EQ(pulled.sync.step, 1);
  EXPECT_EQ(pulled.weights, PullFrom(leader, 2).weights);
  // The restored server 0 continues at step 1.
  EXPECT_EQ(PushTo(*restored, 2, 0, 0).status().code(), absl::StatusCode::kAborted);
  ASSERT_TRUE(PushTo(*restored, 2, 1, 2).ok());
  ASSERT_TRUE(PushTo(*restored, 0, 1, 2).ok());
  EXPECT_EQ(restored->GetStatus().sync_steps(), 2);
}

// Server 1 checkpoints after applying decision 0 and restarts from it; server 0 is still
// at step 1, so the workers' next pulls relay decision 0 again. Server 1 has already
// counted that step (ledger.sync_steps 1): it must not count it a second time.
TEST_F(SyncParameterServerCoreTest, ARestartedServerDoesNotCountTheDecisionItCheckpointedAgain) {
  ParameterServerCore& leader = *cores_[0];
  ParameterServerCore& other = *cores_[1];
  for (int32_t worker : {0, 1}) {
    ASSERT_TRUE(PushTo(other, worker, 0, 0).ok());
    ASSERT_TRUE(PushTo(leader, worker, 0, 0).ok());
  }
  const Pulled decided = PullFrom(leader, 0);
  const Pulled applied = PullFrom(other, 0, 0, decided.sync.decision);
  ASSERT_EQ(applied.version, 2);
  const CoreState checkpoint = other.ExportState();
  EXPECT_EQ(checkpoint.ledger.sync_steps, 1);

  std::unique_ptr<ParameterServerCore> restarted = MakeCore(1, 2);
  ASSERT_TRUE(restarted->RestoreState(checkpoint).ok());
  EXPECT_EQ(restarted->GetStatus().sync_steps(), 1);
  const Pulled relayed = PullFrom(*restarted, 1, 0, decided.sync.decision);
  EXPECT_EQ(relayed.version, 2);
  EXPECT_EQ(relayed.weights, applied.weights);
  const ps::v1::StatusResponse status = restarted->GetStatus();
  EXPECT_EQ(status.sync_steps(), 1);
  EXPECT_EQ(status.global_step(), 2);
  EXPECT_EQ(status.examples_seen(), 2 * kExamples);
  EXPECT_EQ(status.sync_steps_incomplete(), 0);
}

}  // namespace
}  // namespace mobilenet

namespace mobilenet {
namespace {

// Two servers of the tiny model for an elastic cluster of up to 3 workers.
class ElasticParameterServerCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<ShardingPlan> plan =
        ShardingPlan::CreateForLayouts(TinyParameters(), TinyState(), 2, "tiny");
    ASSERT_TRUE(plan.ok()) << plan.status();
    plan_ = std::make_unique<ShardingPlan>(*plan);
  }

  std::unique_ptr<ParameterServerCore> MakeCore(int shard_index, int max_workers,
                                                absl::Duration liveness = absl::Seconds(30)) const {
    ParameterShardConfig config;
    config.learning_rate.examples_per_epoch = 100;
    CoreOptions options;
    options.shard_index = shard_index;
    options.num_workers = 3;
    options.max_workers = max_workers;
    options.sync.worker_liveness = liveness;
    options.incarnation = 700 + shard_index;
    absl::StatusOr<std::unique_ptr<ParameterServerCore>> core =
        ParameterServerCore::Create(*plan_, config, options);
    EXPECT_TRUE(core.ok()) << core.status();
    return core.ok() ? std::move(*core) : nullptr;
  }

  ps::v1::LeaseRequest Lease(int32_t worker, std::vector<std::pair<int, int>> completed = {},
                             std::vector<std::pair<int, int>> held = {}) const {
    ps::v1::LeaseRequest request;
    request.set_plan_fingerprint(plan_->fingerprint());
    request.set_worker_id(worker);
    request.mutable_data()->set_num_examples(100);
    request.mutable_data()->set_blocks_per_epoch(4);
    request.mutable_data()->set_epochs(2);
    request.mutable_data()->set_seed(9);
    for (const auto& [e, b] : completed) {
      ps::v1::DataBlock* block = request.add_completed();
      block->set_epoch(e);
      block->set_block(b);
    }
    for (const auto& [e, b] : held) {
      ps::v1::DataBlock* block = request.add_held();
      block->set_epoch(e);
      block->set_block(b);
    }
    return request;
  }

  std::unique_ptr<ShardingPlan> plan_;
};

TEST_F(ElasticParameterServerCoreTest, Server0LeasesBlocksAndStatusShowsThem) {
  std::unique_ptr<ParameterServerCore> core = MakeCore(0, 3);
  ps::v1::LeaseResponse response;
  ASSERT_TRUE(core->LeaseData(Caller::Worker(2), Lease(2), response).ok());
  EXPECT_EQ(response.outcome(), ps::v1::LEASE_GRANTED);
  EXPECT_EQ(response.block().epoch(), 0);
  EXPECT_EQ(response.block().block(), 0);
  EXPECT_EQ(response.blocks_total(), 8);
  ASSERT_TRUE(core->LeaseData(Caller::Worker(1), Lease(1), response).ok());
  EXPECT_EQ(response.block().block(), 1);
  ASSERT_TRUE(core->LeaseData(Caller::Worker(2), Lease(2, {{0, 0}}), response).ok());
  EXPECT_EQ(response.block().block(), 2);
  EXPECT_EQ(response.blocks_completed(), 1);

  const ps::v1::StatusResponse status = core->GetStatus();
  EXPECT_EQ(status.max_workers(), 3);
  EXPECT_EQ(status.num_workers(), 3);
  ASSERT_TRUE(status.has_data_leases());
  EXPECT_EQ(status.data_leases().data().epochs(), 2);
  EXPECT_EQ(status.data_leases().blocks_completed(), 1);
  EXPECT_EQ(status.data_leases().blocks_total(), 8);
  ASSERT_EQ(status.data_leases().held_size(), 2);
  EXPECT_EQ(status.data_leases().held(0).worker_id(), 1);
  EXPECT_EQ(status.data_leases().held(1).worker_id(), 2);
  ASSERT_EQ(status.membership_events_size(), 2);
  EXPECT_EQ(status.membership_events(0).worker_id(), 2);
  EXPECT_EQ(status.membership_events(0).kind(), ps::v1::MembershipEvent::JOINED);
  EXPECT_EQ(status.workers(2).seconds_since_last_seen() >= 0, true);

  // Another data plan is refused and changes nothing.
  ps::v1::LeaseRequest other = Lease(1);
  other.mutable_data()->set_epochs(5);
  const absl::Status refused = core->LeaseData(Caller::Worker(1), other, response);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), AllOf(HasSubstr("5 epochs"), HasSubstr("2 epochs")));
  EXPECT_EQ(core->GetStatus().data_leases().held_size(), 2);
}

TEST_F(ElasticParameterServerCoreTest, AFinishedMembersBlocksReturnWithItsEvent) {
  std::unique_ptr<ParameterServerCore> core = MakeCore(0, 3);
  ps::v1::LeaseResponse response;
  ASSERT_TRUE(core->LeaseData(Caller::Worker(1), Lease(1), response).ok());
  ps::v1::FinishRequest finish;
  finish.set_plan_fingerprint(plan_->fingerprint());
  finish.set_worker_id(1);
  ASSERT_TRUE(core->Finish(Caller::Worker(1), finish).ok());
  const ps::v1::StatusResponse status = core->GetStatus();
  EXPECT_EQ(status.data_leases().held_size(), 0);
  EXPECT_EQ(status.data_leases().blocks_returned(), 1);
  EXPECT_EQ(status.data_leases().blocks_reassigned(), 1);
  ASSERT_EQ(status.membership_events_size(), 2);
  EXPECT_EQ(status.membership_events(1).kind(), ps::v1::MembershipEvent::FINISHED);
  EXPECT_EQ(status.membership_events(1).detail(), "1 data block returned");
  // Worker 0 is leased the returned block.
  ASSERT_TRUE(core->LeaseData(Caller::Worker(0), Lease(0), response).ok());
  EXPECT_EQ(response.block().block(), 0);
}

TEST_F(ElasticParameterServerCoreTest, ASilentMembersBlockReturnsAndItsDepartureSaysSo) {
  std::unique_ptr<ParameterServerCore> core = MakeCore(0, 3, absl::Milliseconds(100));
  ps::v1::LeaseResponse response;
  ASSERT_TRUE(core->LeaseData(Caller::Worker(1), Lease(1), response).ok());
  const int64_t changes = core->changes();
  absl::SleepFor(absl::Milliseconds(250));
  // No lease call since: the Status itself notices worker 1 left and takes its block back.
  const ps::v1::StatusResponse status = core->GetStatus();
  EXPECT_EQ(status.data_leases().held_size(), 0);
  EXPECT_EQ(status.data_leases().blocks_returned(), 1);
  EXPECT_GT(core->changes(), changes);  // the checkpointed counters changed
  ASSERT_EQ(status.membership_events_size(), 2);
  EXPECT_EQ(status.membership_events(1).kind(), ps::v1::MembershipEvent::LEFT);
  EXPECT_EQ(status.membership_events(1).detail(), "1 data block returned");
  ASSERT_TRUE(core->LeaseData(Caller::Worker(2), Lease(2), response).ok());
  EXPECT_EQ(response.block().block(), 0);
  EXPECT_EQ(core->GetStatus().data_leases().blocks_reassigned(), 1);
}

TEST_F(ElasticParameterServerCoreTest, OtherServersServersWithoutMaxWorkersAndToolsAreRefused) {
  ps::v1::LeaseResponse response;
  std::unique_ptr<ParameterServerCore> second = MakeCore(1, 3);
  absl::Status status = second->LeaseData(Caller::Worker(1), Lease(1), response);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("server 0"), HasSubstr("--max_workers")));
  EXPECT_FALSE(second->GetStatus().has_data_leases());
  EXPECT_EQ(second->GetStatus().max_workers(), 3);

  std::unique_ptr<ParameterServerCore> fixed = MakeCore(0, 0);
  status = fixed->LeaseData(Caller::Worker(1), Lease(1), response);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("--max_workers"));
  EXPECT_FALSE(fixed->GetStatus().has_data_leases());
  EXPECT_EQ(fixed->GetStatus().max_workers(), 0);

  std::unique_ptr<ParameterServerCore> core = MakeCore(0, 3);
  EXPECT_EQ(core->LeaseData(Caller::Monitor(), Lease(1), response).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(core->LeaseData(Caller::Worker(0), Lease(1), response).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(core->LeaseData(Caller::Trusted(), Lease(kToolWorkerId), response).code(),
            absl::StatusCode::kInvalidArgument);
  const ps::v1::StatusResponse after = core->GetStatus();
  EXPECT_EQ(after.data_leases().blocks_total(), 0);  // no plan fixed by a refused request
  EXPECT_EQ(after.requests_denied(), 2);
}

TEST_F(ElasticParameterServerCoreTest, LeasesSurviveExportAndRestoreAsReturnedBlocks) {
  std::unique_ptr<ParameterServerCore> core = MakeCore(0, 3);
  ps::v1::LeaseResponse response;
  ASSERT_TRUE(core->LeaseData(Caller::Worker(1), Lease(1), response).ok());
  ASSERT_TRUE(core->LeaseData(Caller::Worker(1), Lease(1, {{0, 0}}), response).ok());
  const CoreState state = core->ExportState();
  ASSERT_TRUE(state.ledger.data_leases.has_value());
  EXPECT_EQ(state.ledger.data_leases->next_block, 2);

  std::unique_ptr<ParameterServerCore> restarted = MakeCore(0, 3);
  ASSERT_TRUE(restarted->RestoreState(state).ok());
  const ps::v1::StatusResponse status = restarted->GetStatus();
  EXPECT_EQ(status.data_leases().blocks_completed(), 1);
  EXPECT_EQ(status.data_leases().blocks_returned(), 1);
  ASSERT_TRUE(restarted->LeaseData(Caller::Worker(2), Lease(2), response).ok());
  EXPECT_EQ(response.block().block(), 1);

  CoreState corrupt = state;
  corrupt.ledger.data_leases->open_blocks = {5};
  EXPECT_EQ(restarted->RestoreState(corrupt).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ElasticParameterServerCoreCreateTest, MaxWorkersIsTheNumberOfMembers) {
  absl::StatusOr<ShardingPlan> plan =
      ShardingPlan::CreateForLayouts(TinyParameters(), TinyState(), 1, "tiny");
  ASSERT_TRUE(plan.ok());
  CoreOptions options;
  options.num_workers = 2;
  options.max_workers = 4;
  ParameterShardConfig config;
  config.learning_rate.examples_per_epoch = 100;
  EXPECT_EQ(ParameterServerCore::Create(*plan, config, options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mobilenet
