#include "parameter_server/core/request_validation.h"

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/class_names.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parameter_server/core/sharding_plan.h"
#include "parameter_server/core/tiny_layouts_for_test.h"

namespace mobilenet {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string Bytes(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

class RequestValidationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ParameterShardConfig config;
    config.learning_rate.examples_per_epoch = 100;
    auto shard = ParameterShard::Create(TinyParameters(), TinyState(),
                                        WholeModelShardSpec(TinyParameters(), TinyState()), config);
    ASSERT_TRUE(shard.ok()) << shard.status();
    shard_ = std::move(*shard);
    server_.shard_index = 1;
    server_.num_shards = 2;
    server_.plan_fingerprint = 0xabcdef;
    server_.model = "tiny";
    server_.num_workers = 2;
    server_.incarnation = 42;
  }

  ps::v1::PushRequest GoodPush() const {
    ps::v1::PushRequest push;
    push.set_plan_fingerprint(server_.plan_fingerprint);
    push.set_shard_index(1);
    push.set_worker_id(1);
    push.set_request_id(9);
    push.set_example_count(64);
    push.set_gradients(Bytes(std::vector<float>(17, 0.5f)));
    push.set_batch_stats(Bytes(std::vector<float>(6, 1.0f)));
    push.set_server_incarnation(42);
    return push;
  }

  std::unique_ptr<ParameterShard> shard_;
  ServerIdentity server_;
  const Caller trusted_ = Caller::Trusted();
};

TEST_F(RequestValidationTest, APullOfAnotherPlanOrShardIsAFailedPreconditionNamingBothSides) {
  ps::v1::PullRequest pull;
  pull.set_plan_fingerprint(0x1234);
  pull.set_shard_index(1);
  pull.set_model("alpha=1");
  pull.set_num_shards(3);
  absl::Status status = ValidatePullRequest(trusted_, pull, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("0000000000001234"), HasSubstr("0000000000abcdef"),
                                      HasSubstr("\"alpha=1\", 3 parameter servers"),
                                      HasSubstr("\"tiny\", 2 parameter servers")));
  pull.set_plan_fingerprint(server_.plan_fingerprint);
  pull.set_shard_index(0);
  status = ValidatePullRequest(trusted_, pull, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("addressed to parameter server 0"));
}

TEST_F(RequestValidationTest, TheWeightAverageIsRefusedByAServerKeepingNone) {
  ps::v1::PullRequest pull;
  pull.set_plan_fingerprint(server_.plan_fingerprint);
  pull.set_shard_index(1);
  pull.set_worker_id(kToolWorkerId);
  pull.set_weight_average(true);
  const absl::Status status = ValidatePullRequest(trusted_, pull, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("parameter server 1 keeps none"), HasSubstr("--weight_ema_decay")));
  server_.keeps_weight_average = true;
  EXPECT_TRUE(ValidatePullRequest(trusted_, pull, server_).ok());
  // The plan is checked first: another plan's caller learns nothing about the average.
  pull.set_plan_fingerprint(0x1234);
  server_.keeps_weight_average = false;
  EXPECT_THAT(ValidatePullRequest(trusted_, pull, server_).message(),
              HasSubstr("sharding plan mismatch"));
}

TEST_F(RequestValidationTest, PullsComeFromMembersOrTools) {
  ps::v1::PullRequest pull;
  pull.set_plan_fingerprint(server_.plan_fingerprint);
  pull.set_shard_index(1);
  for (int32_t id : {kToolWorkerId, 0, 1}) {
    pull.set_worker_id(id);
    EXPECT_TRUE(ValidatePullRequest(trusted_, pull, server_).ok()) << id;
  }
  for (int32_t id : {2, -2, std::numeric_limits<int32_t>::max()}) {
    pull.set_worker_id(id);
    const absl::Status status = ValidatePullRequest(trusted_, pull, server_);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << id;
    EXPECT_THAT(status.message(), HasSubstr("is not a worker of this cluster (ids 0 to 1)"));
  }
}

TEST_F(RequestValidationTest, TrainingPullsComeFromMembersAndAreOfTheWeights) {
  ps::v1::PullRequest pull;
  pull.set_plan_fingerprint(server_.plan_fingerprint);
  pull.set_shard_index(1);
  pull.set_training(true);
  pull.set_worker_id(1);
  EXPECT_TRUE(ValidatePullRequest(trusted_, pull, server_).ok());
  pull.set_worker_id(kToolWorkerId);
  absl::Status status = ValidatePullRequest(trusted_, pull, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("training: a tool's pull (worker_id -1)"));
  pull.set_worker_id(0);
  pull.set_weight_average(true);
  server_.keeps_weight_average = true;
  status = ValidatePullRequest(trusted_, pull, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("training: gradients are computed from the weights"));
}

TEST_F(RequestValidationTest, AValidPushYieldsItsCheckedUpdate) {
  const ps::v1::PushRequest push = GoodPush();
  absl::StatusOr<ValidatedPush> validated = ValidatePushRequest(trusted_, push, server_, *shard_);
  ASSERT_TRUE(validated.ok()) << validated.status();
  EXPECT_EQ(validated->worker_id, 1);
  EXPECT_EQ(validated->request_id, 9u);
  EXPECT_EQ(validated->update.example_count(), 64);
  EXPECT_EQ(validated->update.gradients().size(), 17u);
  EXPECT_EQ(validated->update.batch_stats().size(), 6u);
  EXPECT_EQ(validated->update.gradients()[16], 0.5f);
  // No incarnation (a client that does not know it) is accepted; so are no statistics.
  ps::v1::PushRequest plain = GoodPush();
  plain.clear_server_incarnation();
  plain.clear_batch_stats();
  EXPECT_TRUE(ValidatePushRequest(trusted_, plain, server_, *shard_).ok());
}

TEST_F(RequestValidationTest, EveryBadPushFieldIsListedInOneError) {
  ps::v1::PushRequest push = GoodPush();
  push.set_worker_id(7);
  push.set_example_count(int64_t{1} << 62);
  push.set_computed_from_version(-3);
  push.set_worker_steps(-1);
  push.set_worker_images_per_sec(std::numeric_limits<double>::infinity());
  push.set_gradients(push.gradients() + "x");  // 69 bytes
  push.set_batch_stats(push.batch_stats().substr(4));
  const absl::Status status = ValidatePushRequest(trusted_, push, server_, *shard_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("worker_id: 7 is not a worker"),
                    HasSubstr("example_count: 4611686018427387904, expected 1 to 1048576"),
                    HasSubstr("computed_from_version: -3"), HasSubstr("worker_steps: -1"),
                    HasSubstr("worker_images_per_sec: inf"),
                    HasSubstr("gradients: 69 bytes, expected 68 (17 float32 values)"),
                    HasSubstr("batch_stats: 20 bytes, expected 24 (6 float32 values) or none")));
}

TEST_F(RequestValidationTest, APushOfAnEarlierRunIsAbortedAfterTheFieldsAreValid) {
  ps::v1::PushRequest push = GoodPush();
  push.set_server_incarnation(41);
  absl::Status status = ValidatePushRequest(trusted_, push, server_, *shard_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(status.message(), HasSubstr("before it restarted; pull again"));
  push.set_worker_id(5);  // invalid fields win: the push could never be applied
  EXPECT_EQ(ValidatePushRequest(trusted_, push, server_, *shard_).status().code(),
            absl::StatusCode::kInvalidArgument);
  push.set_plan_fingerprint(1);  // and another plan wins over both
  EXPECT_EQ(ValidatePushRequest(trusted_, push, server_, *shard_).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(RequestValidationTest, PayloadValuesAreCheckedByTensorAndElement) {
  ps::v1::PushRequest push = GoodPush();
  std::vector<float> gradients(17, 0.5f);
  gradients[7] = std::numeric_limits<float>::quiet_NaN();  // a/BatchNorm/gamma is [6, 9)
  push.set_gradients(Bytes(gradients));
  absl::Status status = ValidatePushRequest(trusted_, push, server_, *shard_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("push from worker 1: gradient for a/BatchNorm/gamma[1] is nan"));

  push = GoodPush();
  std::vector<float> stats(6, 1.0f);
  stats[3] = -1.0f;  // moving_variance[0]
  push.set_batch_stats(Bytes(stats));
  status = ValidatePushRequest(trusted_, push, server_, *shard_).status();
  EXPECT_THAT(status.message(), HasSubstr("a/BatchNorm/moving_variance[0] is -1"));
}

TEST_F(RequestValidationTest, SixteenBitGradientsAreSizedByTheirFormatAndDecoded) {
  for (ps::v1::PayloadDtype dtype :
       {ps::v1::PAYLOAD_DTYPE_BFLOAT16, ps::v1::PAYLOAD_DTYPE_FLOAT16}) {
    ps::v1::PushRequest push = GoodPush();
    push.set_gradients_dtype(dtype);
    // 17 values of 2 bytes: 0.5 is 0x3f00 in bfloat16 and 0x3800 in binary16.
    const uint16_t half = dtype == ps::v1::PAYLOAD_DTYPE_BFLOAT16 ? 0x3f00 : 0x3800;
    std::string gradients;
    for (int i = 0; i < 17; ++i) gradients.append(reinterpret_cast<const char*>(&half), 2);
    push.set_gradients(gradients);
    absl::StatusOr<ValidatedPush> validated = ValidatePushRequest(trusted_, push, server_, *shard_);
    ASSERT_TRUE(validated.ok()) << validated.status();
    EXPECT_EQ(validated->update.gradients().size(), 17u);
    EXPECT_EQ(validated->update.gradients()[16], 0.5f);
    EXPECT_EQ(validated->update.batch_stats()[5], 1.0f);  // statistics stay float32

    // The float32 size is wrong for a 16-bit format, and the message says which applies.
    push.set_gradients(Bytes(std::vector<float>(17, 0.5f)));
    const absl::Status status = ValidatePushRequest(trusted_, push, server_, *shard_).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(),
                HasSubstr(absl::StrCat(
                    "gradients: 68 bytes, expected 34 (17 ",
                    dtype == ps::v1::PAYLOAD_DTYPE_BFLOAT16 ? "bfloat16" : "float16", " values)")));
  }
}

TEST_F(RequestValidationTest, DecodedGradientsAreCheckedForFiniteValues) {
  ps::v1::PushRequest push = GoodPush();
  push.set_gradients_dtype(ps::v1::PAYLOAD_DTYPE_FLOAT16);
  std::string gradients(34, '\0');
  gradients[2 * 7 + 1] = static_cast<char>(0x7c);  // +infinity in binary16
  push.set_gradients(gradients);
  const absl::Status status = ValidatePushRequest(trusted_, push, server_, *shard_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("gradient for a/BatchNorm/gamma[1] is inf"));
}

TEST_F(RequestValidationTest, UnknownPayloadFormatsAreRefused) {
  ps::v1::PushRequest push = GoodPush();
  push.set_gradients_dtype(static_cast<ps::v1::PayloadDtype>(7));
  absl::Status status = ValidatePushRequest(trusted_, push, server_, *shard_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("gradients_dtype: 7 is not a PayloadDtype"),
                                      ::testing::Not(HasSubstr("gradients: "))));

  ps::v1::PullRequest pull;
  pull.set_plan_fingerprint(server_.plan_fingerprint);
  pull.set_shard_index(1);
  pull.set_parameters_dtype(ps::v1::PAYLOAD_DTYPE_BFLOAT16);
  EXPECT_TRUE(ValidatePullRequest(trusted_, pull, server_).ok());
  pull.set_parameters_dtype(static_cast<ps::v1::PayloadDtype>(-1));
  status = ValidatePullRequest(trusted_, pull, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("parameters_dtype: -1 is not a PayloadDtype"));
}

TEST_F(RequestValidationTest, OnlyTheChiefReportsPlausibleEvaluations) {
  ps::v1::EvaluationReport report;
  report.set_plan_fingerprint(server_.plan_fingerprint);
  report.set_worker_id(0);
  report.set_examples(100);
  report.set_correct(90);
  report.set_loss(0.3);
  report.set_global_step(12);
  EXPECT_TRUE(ValidateEvaluationReport(trusted_, report, server_).ok());
  report.set_average_examples(100);
  report.set_average_correct(92);
  report.set_average_loss(0.25);
  EXPECT_TRUE(ValidateEvaluationReport(trusted_, report, server_).ok());
  report.set_worker_id(1);
  report.set_correct(101);
  report.set_loss(std::nan(""));
  report.set_global_step(-2);
  report.set_average_correct(-1);
  report.set_average_loss(-0.5);
  const absl::Status status = ValidateEvaluationReport(trusted_, report, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("only the chief (worker 0) reports evaluations"),
                                      HasSubstr("101 correct of 100"), HasSubstr("loss: nan"),
                                      HasSubstr("global_step: -2"), HasSubstr("-1 correct of 100"),
                                      HasSubstr("average_loss: -0.5")));
  report.set_plan_fingerprint(5);
  EXPECT_EQ(ValidateEvaluationReport(trusted_, report, server_).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(RequestValidationTest, ClassNamesComeFromTheChiefOnePerClassAndValid) {
  server_.num_classes = 3;
  ps::v1::EvaluationReport report;
  report.set_plan_fingerprint(server_.plan_fingerprint);
  report.set_worker_id(0);
  for (const char* name : {"cat", "dog", "Bär"}) report.add_class_names(name);
  EXPECT_TRUE(ValidateEvaluationReport(Caller::Worker(0), report, server_).ok());
  // Names from anyone but the chief: refused before the names are looked at.
  EXPECT_EQ(ValidateEvaluationReport(Caller::Worker(1), report, server_).code(),
            absl::StatusCode::kPermissionDenied);

  const struct {
    std::vector<std::string> names;
    const char* problem;
  } cases[] = {
      {{"cat", "dog"}, "class_names: 2 class names for a model of 3 classes"},
      {{"cat", "d\xffg", "bird"}, "class_names: class name 1 is not valid UTF-8"},
      {{"cat", "dog", std::string(kMaxClassNameBytes + 1, 'b')}, "class name 2 has 257 bytes"},
      {{"cat", "", "bird"}, "class name 1 is empty"},
      {{"cat", "do\ng", "bird"}, "class name 1 holds control character 0x0a"},
  };
  for (const auto& c : cases) {
    report.clear_class_names();
    for (const std::string& name : c.names) report.add_class_names(name);
    const absl::Status status = ValidateEvaluationReport(Caller::Worker(0), report, server_);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.problem;
    EXPECT_THAT(status.message(), HasSubstr(c.problem));
  }
}

TEST_F(RequestValidationTest, OnlyTheChiefEndsTheTraining) {
  ps::v1::FinishRequest finish;
  finish.set_plan_fingerprint(server_.plan_fingerprint);
  finish.set_worker_id(1);
  EXPECT_TRUE(ValidateFinishRequest(trusted_, finish, server_).ok());
  finish.set_training_complete(true);
  absl::Status status = ValidateFinishRequest(trusted_, finish, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("only the chief (worker 0) ends the training, not worker 1"));
  finish.set_worker_id(0);
  EXPECT_TRUE(ValidateFinishRequest(trusted_, finish, server_).ok());
  finish.set_worker_id(2);
  EXPECT_THAT(ValidateFinishRequest(trusted_, finish, server_).message(),
              HasSubstr("worker_id: 2"));
}

// Rights are checked first: a caller that may not make a request learns nothing about
// the plan, the fields or the server's state from the answer.
TEST_F(RequestValidationTest, WorkersActOnlyAsThemselves) {
  ps::v1::PushRequest push = GoodPush();  // worker_id 1
  EXPECT_TRUE(ValidatePushRequest(Caller::Worker(1), push, server_, *shard_).ok());
  absl::Status status = ValidatePushRequest(Caller::Worker(0), push, server_, *shard_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(status.message(), "Push: worker-0 may not push as worker 1");
  push.set_plan_fingerprint(1);  // denied before the plan is looked at
  EXPECT_EQ(ValidatePushRequest(Caller::Worker(0), push, server_, *shard_).status().code(),
            absl::StatusCode::kPermissionDenied);

  ps::v1::FinishRequest finish;
  finish.set_plan_fingerprint(server_.plan_fingerprint);
  finish.set_worker_id(0);
  EXPECT_TRUE(ValidateFinishRequest(Caller::Worker(0), finish, server_).ok());
  status = ValidateFinishRequest(Caller::Worker(1), finish, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr("worker-1 may not finish as worker 0"));

  ps::v1::PullRequest pull;
  pull.set_plan_fingerprint(server_.plan_fingerprint);
  pull.set_shard_index(1);
  for (int32_t id : {kToolWorkerId, 1}) {
    pull.set_worker_id(id);
    EXPECT_TRUE(ValidatePullRequest(Caller::Worker(1), pull, server_).ok()) << id;
  }
  pull.set_worker_id(0);
  status = ValidatePullRequest(Caller::Worker(1), pull, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr("worker-1 may not pull as worker 0"));
}

TEST_F(RequestValidationTest, OnlyTheChiefEndsTheTrainingOrReportsEvaluations) {
  ps::v1::FinishRequest finish;
  finish.set_plan_fingerprint(server_.plan_fingerprint);
  finish.set_worker_id(1);
  EXPECT_TRUE(ValidateFinishRequest(Caller::Worker(1), finish, server_).ok());
  finish.set_training_complete(true);
  absl::Status status = ValidateFinishRequest(Caller::Worker(1), finish, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr("worker-1 may not end the training"));
  finish.set_worker_id(0);
  EXPECT_TRUE(ValidateFinishRequest(Caller::Worker(0), finish, server_).ok());

  ps::v1::EvaluationReport report;
  report.set_plan_fingerprint(server_.plan_fingerprint);
  report.set_worker_id(0);
  report.set_examples(100);
  report.set_correct(90);
  EXPECT_TRUE(ValidateEvaluationReport(Caller::Worker(0), report, server_).ok());
  for (const Caller& caller : {Caller::Worker(1), Caller::Monitor(), Caller::ParameterServer(0)}) {
    status = ValidateEvaluationReport(caller, report, server_);
    EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << caller.name();
    EXPECT_THAT(status.message(), HasSubstr("only the chief, worker-0")) << caller.name();
  }
}

TEST_F(RequestValidationTest, MonitorsAndServersChangeNothing) {
  ps::v1::PushRequest push = GoodPush();
  ps::v1::FinishRequest finish;
  finish.set_plan_fingerprint(server_.plan_fingerprint);
  finish.set_worker_id(1);
  ps::v1::PullRequest pull;
  pull.set_plan_fingerprint(server_.plan_fingerprint);
  pull.set_shard_index(1);
  pull.set_worker_id(kToolWorkerId);
  EXPECT_TRUE(ValidatePullRequest(Caller::Monitor(), pull, server_).ok());
  for (const Caller& caller : {Caller::Monitor(), Caller::ParameterServer(1)}) {
    const absl::Status pushed = ValidatePushRequest(caller, push, server_, *shard_).status();
    EXPECT_EQ(pushed.code(), absl::StatusCode::kPermissionDenied) << caller.name();
    EXPECT_THAT(pushed.message(), HasSubstr(caller.name() + " may not push"));
    EXPECT_EQ(ValidateFinishRequest(caller, finish, server_).code(),
              absl::StatusCode::kPermissionDenied)
        << caller.name();
  }
  EXPECT_EQ(ValidatePullRequest(Caller::ParameterServer(0), pull, server_).code(),
            absl::StatusCode::kPermissionDenied);
  pull.set_worker_id(1);  // a monitor is not a member: its pulls would count as one's
  EXPECT_EQ(ValidatePullRequest(Caller::Monitor(), pull, server_).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(RequestValidationTest, APushMustMatchTheServersSynchronousModeNamingTheFlag) {
  ps::v1::PushRequest push = GoodPush();
  push.set_sync_step(0);
  absl::StatusOr<ValidatedPush> validated = ValidatePushRequest(trusted_, push, server_, *shard_);
  EXPECT_EQ(validated.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(validated.status().message(),
              AllOf(HasSubstr("trains asynchronously"), HasSubstr("--sync_replicas")));

  server_.sync_replicas = true;
  validated = ValidatePushRequest(trusted_, GoodPush(), server_, *shard_);
  EXPECT_EQ(validated.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(validated.status().message(),
              AllOf(HasSubstr("trains synchronously"), HasSubstr("--sync_replicas")));

  push.set_sync_step(7);
  validated = ValidatePushRequest(trusted_, push, server_, *shard_);
  ASSERT_TRUE(validated.ok()) << validated.status();
  EXPECT_EQ(validated->sync_step, 7);
  push.set_sync_step(-1);
  validated = ValidatePushRequest(trusted_, push, server_, *shard_);
  EXPECT_EQ(validated.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(validated.status().message(), HasSubstr("sync_step: -1, expected >= 0"));

  // An asynchronous push reports no step.
  server_.sync_replicas = false;
  validated = ValidatePushRequest(trusted_, GoodPush(), server_, *shard_);
  ASSERT_TRUE(validated.ok()) << validated.status();
  EXPECT_EQ(validated->sync_step, -1);
}

TEST_F(RequestValidationTest, OnlyServerZeroOfASynchronousClusterIsAskedForAStep) {
  ps::v1::PullRequest pull;
  pull.set_plan_fingerprint(server_.plan_fingerprint);
  pull.set_shard_index(1);
  pull.set_worker_id(0);
  pull.set_min_sync_step(3);
  server_.sync_replicas = true;
  absl::Status status = ValidatePullRequest(trusted_, pull, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("min_sync_step: 3, but only server 0"));
  server_.shard_index = 0;
  pull.set_shard_index(0);
  EXPECT_TRUE(ValidatePullRequest(trusted_, pull, server_).ok());
  server_.sync_replicas = false;
  EXPECT_EQ(ValidatePullRequest(trusted_, pull, server_).code(),
            absl::StatusCode::kInvalidArgument);
  server_.sync_replicas = true;
  pull.set_min_sync_step(-1);
  status = ValidatePullRequest(trusted_, pull, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("min_sync_step: -1, expected >= 0"));
}

TEST_F(RequestValidationTest, OnlyMembersRelayDecisionsAndOnlyToTheOtherServers) {
  server_.sync_replicas = true;
  ps::v1::PullRequest pull;
  pull.set_plan_fingerprint(server_.plan_fingerprint);
  pull.set_shard_index(1);
  pull.set_worker_id(0);
  ps::v1::SyncDecision* decision = pull.mutable_sync_decision();
  decision->set_step(4);
  decision->add_worker_ids(1);
  decision->add_examples(32);
  decision->add_worker_ids(0);
  decision->add_examples(16);
  EXPECT_TRUE(ValidatePullRequest(trusted_, pull, server_).ok());

  ps::v1::PullRequest from_tool = pull;
  from_tool.set_worker_id(kToolWorkerId);
  absl::Status status = ValidatePullRequest(trusted_, from_tool, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("not a tool"));

  ps::v1::PullRequest to_leader = pull;
  to_leader.set_shard_index(0);
  server_.shard_index = 0;
  status = ValidatePullRequest(trusted_, to_leader, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("server 0 makes the decisions"));

  server_.shard_index = 1;
  server_.sync_replicas = false;
  status = ValidatePullRequest(trusted_, pull, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("does not run --sync_replicas"));
}

TEST_F(RequestValidationTest, ARelayedDecisionNamesDistinctMembersWithTheirExamples) {
  server_.sync_replicas = true;
  const auto refused = [&](const ps::v1::SyncDecision& decision) {
    ps::v1::PullRequest pull;
    pull.set_plan_fingerprint(server_.plan_fingerprint);
    pull.set_shard_index(1);
    pull.set_worker_id(0);
    *pull.mutable_sync_decision() = decision;
    const absl::Status status = ValidatePullRequest(trusted_, pull, server_);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << decision.ShortDebugString();
    return std::string(status.message());
  };
  ps::v1::SyncDecision good;
  good.set_step(0);
  good.add_worker_ids(0);
  good.add_examples(1);

  ps::v1::SyncDecision negative_step = good;
  negative_step.set_step(-1);
  EXPECT_THAT(refused(negative_step), HasSubstr("sync_decision.step: -1"));
  EXPECT_THAT(refused(ps::v1::SyncDecision()), HasSubstr("0 workers with 0 example counts"));
  ps::v1::SyncDecision missing_count = good;
  missing_count.add_worker_ids(1);
  EXPECT_THAT(refused(missing_count), HasSubstr("2 workers with 1 example counts"));
  ps::v1::SyncDecision too_many = good;
  for (int32_t id : {1, 0}) {
    too_many.add_worker_ids(id);
    too_many.add_examples(1);
  }
  EXPECT_THAT(refused(too_many), HasSubstr("expected 1 to 2 workers"));
  ps::v1::SyncDecision twice = good;
  twice.add_worker_ids(0);
  twice.add_examples(1);
  EXPECT_THAT(refused(twice), HasSubstr("sync_decision.worker_ids[1]: 0, expected distinct"));
  ps::v1::SyncDecision stranger = good;
  stranger.set_worker_ids(0, 2);
  EXPECT_THAT(refused(stranger), HasSubstr("sync_decision.worker_ids[0]: 2"));
  ps::v1::SyncDecision no_examples = good;
  no_examples.set_examples(0, 0);
  EXPECT_THAT(refused(no_examples), HasSubstr("sync_decision.examples[0]: 0"));
  ps::v1::SyncDecision too_many_examples = good;
  too_many_examples.set_examples(0, kMaxExamplesPerPush + 1);
  EXPECT_THAT(refused(too_many_examples),
              HasSubstr(absl::StrCat("sync_decision.examples[0]: ", kMaxExamplesPerPush + 1)));
}

ps::v1::LeaseRequest GoodLease(const ServerIdentity& server) {
  ps::v1::LeaseRequest lease;
  lease.set_plan_fingerprint(server.plan_fingerprint);
  lease.set_worker_id(1);
  lease.mutable_data()->set_num_examples(100);
  lease.mutable_data()->set_blocks_per_epoch(10);
  lease.mutable_data()->set_epochs(3);
  ps::v1::DataBlock* done = lease.add_completed();
  done->set_epoch(0);
  done->set_block(4);
  ps::v1::DataBlock* held = lease.add_held();
  held->set_epoch(0);
  held->set_block(5);
  return lease;
}

TEST_F(RequestValidationTest, LeasesGoOnlyToServer0OfAnElasticClusterNamingTheFlag) {
  server_.shard_index = 0;
  const ps::v1::LeaseRequest lease = GoodLease(server_);
  absl::Status status = ValidateLeaseRequest(trusted_, lease, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("--max_workers"), HasSubstr("server 0")));
  server_.max_workers = 2;
  EXPECT_TRUE(ValidateLeaseRequest(trusted_, lease, server_).ok());
  server_.shard_index = 1;
  status = ValidateLeaseRequest(trusted_, lease, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("is not server 0"), HasSubstr("--max_workers")));
}

TEST_F(RequestValidationTest, LeasesAreForMembersAsThemselvesUnderThisPlan) {
  server_.shard_index = 0;
  server_.max_workers = 2;
  ps::v1::LeaseRequest lease = GoodLease(server_);
  EXPECT_TRUE(ValidateLeaseRequest(Caller::Worker(1), lease, server_).ok());
  for (const Caller& caller : {Caller::Worker(0), Caller::Monitor(), Caller::ParameterServer(1)}) {
    EXPECT_EQ(ValidateLeaseRequest(caller, lease, server_).code(),
              absl::StatusCode::kPermissionDenied)
        << caller.name();
  }
  lease.set_worker_id(kToolWorkerId);
  absl::Status status = ValidateLeaseRequest(trusted_, lease, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("worker_id"));
  lease.set_worker_id(2);
  EXPECT_EQ(ValidateLeaseRequest(trusted_, lease, server_).code(),
            absl::StatusCode::kInvalidArgument);
  lease = GoodLease(server_);
  lease.set_plan_fingerprint(0x1234);
  lease.set_model("alpha=1");
  status = ValidateLeaseRequest(trusted_, lease, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("sharding plan mismatch"), HasSubstr("alpha=1")));
}

TEST_F(RequestValidationTest, LeaseFieldsOutOfRangeAreListedTogether) {
  server_.shard_index = 0;
  server_.max_workers = 2;
  ps::v1::LeaseRequest lease = GoodLease(server_);
  lease.mutable_data()->set_num_examples(0);
  lease.mutable_data()->set_epochs(0);
  absl::Status status = ValidateLeaseRequest(trusted_, lease, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("data.num_examples: 0"), HasSubstr("data.blocks_per_epoch: 10"),
                    HasSubstr("data.epochs: 0")));
  lease = GoodLease(server_);
  lease.mutable_data()->set_num_examples(int64_t{1} << 31);  // no worker can number them
  EXPECT_THAT(ValidateLeaseRequest(trusted_, lease, server_).message(),
              HasSubstr("data.num_examples: 2147483648, expected 1 to 2147483647"));
  lease.mutable_data()->set_num_examples(2'147'483'647);  // 2^31 - 1
  lease.mutable_data()->set_blocks_per_epoch(1'000'000);
  lease.mutable_data()->set_epochs(11);
  EXPECT_THAT(ValidateLeaseRequest(trusted_, lease, server_).message(),
              HasSubstr("at most 10000000 blocks"));
  lease.mutable_data()->set_epochs(10);
  EXPECT_TRUE(ValidateLeaseRequest(trusted_, lease, server_).ok());

  lease = GoodLease(server_);
  *lease.add_completed() = lease.completed(0);  // twice
  *lease.add_held() = lease.completed(0);       // also completed
  lease.add_held()->set_epoch(-1);
  status = ValidateLeaseRequest(trusted_, lease, server_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("completed: block 4 of epoch 0 listed twice"),
                                      HasSubstr("held: block 4 of epoch 0 is also completed"),
                                      HasSubstr("expected both >= 0")));
  lease = GoodLease(server_);
  for (int i = 0; i < kMaxLeaseBlocksListed; ++i) lease.add_held()->set_block(10 + i);
  EXPECT_THAT(ValidateLeaseRequest(trusted_, lease, server_).message(),
              HasSubstr("held: 17 blocks, expected at most 16"));
}

}  // namespace
}  // namespace mobilenet
