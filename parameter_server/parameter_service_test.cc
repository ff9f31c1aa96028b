#include "parameter_server/parameter_service.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/generic/generic_stub.h>

#include "absl/synchronization/notification.h"
#include "common/grpc_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parameter_server/core/sharding_plan.h"
#include "parameter_server/grpc_server.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;
namespace pb = ::mobilenet::ps::v1;

MobileNetConfig SmallModel() {
  MobileNetConfig config;
  config.alpha = 0.25f;
  config.resolution = 32;
  config.input_channels = 1;
  config.num_classes = 10;
  return config;
}

std::string FloatBytes(const std::vector<float>& values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// Shard 1 of a 2-server plan behind a real server on 127.0.0.1, and a raw stub to it.
class ParameterServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(SmallModel(), 2);
    ASSERT_TRUE(plan.ok()) << plan.status();
    plan_ = std::make_unique<ShardingPlan>(*std::move(plan));
    ParameterShardConfig config;
    config.seed = 7;
    config.learning_rate.examples_per_epoch = 1000;
    CoreOptions options;
    options.shard_index = 1;
    options.num_workers = num_workers_;
    absl::StatusOr<std::unique_ptr<ParameterServerCore>> core =
        ParameterServerCore::Create(*plan_, config, options);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
    service_ = std::make_unique<ParameterService>(core_.get());
    message_limit_ = MessageLimitForPayload(plan_->shard_bytes(1));
    absl::StatusOr<StartedServer> started = StartGrpcServer(
        "127.0.0.1:0", {service_.get()}, ParameterServerLimits(message_limit_, num_workers_));
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = std::move(*started);
    ASSERT_GT(server_.port, 0);
    // The client may send more than the server accepts (to test that it refuses).
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetMaxSendMessageSize(64 << 20);
    channel_ = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_.port),
                                         grpc::InsecureChannelCredentials(), args);
    stub_ = pb::ParameterServer::NewStub(channel_);
  }

  void TearDown() override {
    if (server_.server) server_.server->Shutdown();
  }

  std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return context;
  }

  pb::PullRequest GoodPull() {
    pb::PullRequest request;
    request.set_plan_fingerprint(plan_->fingerprint());
    request.set_shard_index(1);
    request.set_include_state(true);
    request.set_worker_id(3);
    return request;
  }

  // A valid push of gradient `value` everywhere from version `from`.
  pb::PushRequest GoodPush(float value, int64_t from, uint64_t request_id) {
    pb::PushRequest request;
    request.set_plan_fingerprint(plan_->fingerprint());
    request.set_shard_index(1);
    request.set_worker_id(3);
    request.set_request_id(request_id);
    request.set_computed_from_version(from);
    request.set_example_count(8);
    request.set_gradients(
        FloatBytes(std::vector<float>(core_->parameter_count(), value)));
    request.set_worker_images_per_sec(123.5);
    request.set_worker_steps(17);
    return request;
  }

  grpc::Status CallPush(const pb::PushRequest& request, pb::PushResponse* response) {
    auto context = Context();
    return stub_->Push(context.get(), request, response);
  }

  // The shard's weights as the server returns them.
  std::string PulledWeights() {
    pb::PullResponse response;
    auto context = Context();
    const grpc::Status status = stub_->Pull(context.get(), GoodPull(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.parameters();
  }

  // A push that must be refused with `code` and a message containing `text`, leaving the
  // weights and version as they were.
  void ExpectRefused(const pb::PushRequest& request, grpc::StatusCode code,
                     const std::string& text) {
    const std::string before = PulledWeights();
    const int64_t version_before = core_->shard().version();
    pb::PushResponse response;
    const grpc::Status status = CallPush(request, &response);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(text));
    EXPECT_EQ(PulledWeights(), before) << "a refused push changed the weights";
    EXPECT_EQ(core_->shard().version(), version_before);
  }

  int num_workers_ = 4;
  int message_limit_ = 0;
  std::unique_ptr<ShardingPlan> plan_;
  std::unique_ptr<ParameterServerCore> core_;
  std::unique_ptr<ParameterService> service_;
  StartedServer server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::ParameterServer::Stub> stub_;
};

TEST_F(ParameterServiceTest, PullReturnsTheShardsWeightsStateAndVersion) {
  std::vector<float> weights(core_->parameter_count()), state(core_->state_count());
  core_->shard().Pull(absl::MakeSpan(weights), absl::MakeSpan(state));
  pb::PullResponse response;
  auto context = Context();
  ASSERT_TRUE(stub_->Pull(context.get(), GoodPull(), &response).ok());
  EXPECT_EQ(response.version(), 0);
  EXPECT_EQ(response.parameters(), FloatBytes(weights));
  EXPECT_EQ(response.state(), FloatBytes(state));

  pb::PullRequest without_state = GoodPull();
  without_state.set_include_state(false);
  auto context2 = Context();
  ASSERT_TRUE(stub_->Pull(context2.get(), without_state, &response).ok());
  EXPECT_TRUE(response.state().empty());
}

TEST_F(ParameterServiceTest, PushAppliesAndReportsVersionAndRate) {
  const std::string before = PulledWeights();
  pb::PushResponse response;
  ASSERT_TRUE(CallPush(GoodPush(0.5f, 0, 1), &response).ok());
  EXPECT_EQ(response.version(), 1);
  EXPECT_EQ(response.staleness(), 0);
  EXPECT_FLOAT_EQ(response.learning_rate(), 0.045f);
  EXPECT_NE(PulledWeights(), before);
}

TEST_F(ParameterServiceTest, RetriedPushIsAppliedOnce) {
  pb::PushResponse first, second;
  ASSERT_TRUE(CallPush(GoodPush(0.5f, 0, 42), &first).ok());
  const std::string after_first = PulledWeights();
  ASSERT_TRUE(CallPush(GoodPush(0.5f, 0, 42), &second).ok());
  EXPECT_EQ(second.version(), first.version());
  EXPECT_FALSE(first.duplicate());
  EXPECT_TRUE(second.duplicate());
  EXPECT_EQ(PulledWeights(), after_first);
  EXPECT_EQ(core_->shard().version(), 1);
  EXPECT_EQ(core_->GetStatus().pushes_duplicate(), 1);
}

TEST_F(ParameterServiceTest, PullNamesThisRunAndPushesFromAnotherRunAreAborted) {
  pb::PullResponse pulled;
  auto context = Context();
  ASSERT_TRUE(stub_->Pull(context.get(), GoodPull(), &pulled).ok());
  EXPECT_EQ(pulled.server_incarnation(), core_->incarnation());
  EXPECT_NE(pulled.server_incarnation(), 0u);

  pb::PushRequest same_run = GoodPush(0.5f, 0, 1);
  same_run.set_server_incarnation(pulled.server_incarnation());
  pb::PushResponse response;
  ASSERT_TRUE(CallPush(same_run, &response).ok());
  EXPECT_EQ(response.version(), 1);

  // Weights from before a restart: possibly newer than what the server restored, so the
  // version alone cannot tell; the worker is told to pull again, nothing is applied.
  pb::PushRequest earlier_run = GoodPush(0.5f, 5, 2);
  earlier_run.set_server_incarnation(pulled.server_incarnation() ^ 1);
  ExpectRefused(earlier_run, grpc::StatusCode::ABORTED, "before it restarted");
  EXPECT_EQ(core_->GetStatus().pushes_rejected_restarted(), 1);

  // Without an incarnation (e.g. a hand-written client) the version is checked as before.
  ExpectRefused(GoodPush(0.5f, 5, 3), grpc::StatusCode::INVALID_ARGUMENT, "version");
}

TEST_F(ParameterServiceTest, PlanMismatchIsRefusedNamingBothSides) {
  pb::PullRequest pull = GoodPull();
  pull.set_plan_fingerprint(0x1234);
  pull.set_model("alpha=0.5 resolution=32 channels=1 classes=10");
  pull.set_num_shards(3);
  pb::PullResponse pulled;
  auto context = Context();
  const grpc::Status status = stub_->Pull(context.get(), pull, &pulled);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("0000000000001234"));
  EXPECT_THAT(status.error_message(), HasSubstr(FormatFingerprint(plan_->fingerprint())));
  EXPECT_THAT(status.error_message(), HasSubstr("alpha=0.5 resolution=32"));
  EXPECT_THAT(status.error_message(), HasSubstr("3 parameter servers"));
  EXPECT_THAT(status.error_message(), HasSubstr(plan_->model()));
  EXPECT_THAT(status.error_message(), HasSubstr("2 parameter servers"));

  pb::PushRequest push = GoodPush(0.5f, 0, 1);
  push.set_plan_fingerprint(0x1234);
  ExpectRefused(push, grpc::StatusCode::FAILED_PRECONDITION, "0000000000001234");
}

TEST_F(ParameterServiceTest, WrongShardIsRefusedNamingBoth) {
  pb::PushRequest push = GoodPush(0.5f, 0, 1);
  push.set_shard_index(0);
  ExpectRefused(push, grpc::StatusCode::FAILED_PRECONDITION,
                "addressed to parameter server 0, but this is parameter server 1 of 2");
  pb::PullRequest pull = GoodPull();
  pull.set_shard_index(0);
  pb::PullResponse pulled;
  auto context = Context();
  EXPECT_EQ(stub_->Pull(context.get(), pull, &pulled).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ParameterServiceTest, WrongPayloadSizesAreInvalidArguments) {
  pb::PushRequest push = GoodPush(0.5f, 0, 1);
  push.mutable_gradients()->push_back('x');
  ExpectRefused(push, grpc::StatusCode::INVALID_ARGUMENT,
                absl::StrCat("gradients: ", core_->parameter_count() * 4 + 1, " bytes"));

  push = GoodPush(0.5f, 0, 2);
  push.mutable_gradients()->resize(push.gradients().size() - 4);
  ExpectRefused(push, grpc::StatusCode::INVALID_ARGUMENT,
                absl::StrCat("expected ", core_->parameter_count() * 4));

  push = GoodPush(0.5f, 0, 3);
  push.set_batch_stats(FloatBytes({1.0f, 2.0f}));
  ExpectRefused(push, grpc::StatusCode::INVALID_ARGUMENT, "batch_stats: 8 bytes");
  EXPECT_EQ(core_->GetStatus().pushes_invalid(), 3);
}

TEST_F(ParameterServiceTest, NonFiniteGradientsAreRefused) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity()}) {
    pb::PushRequest push = GoodPush(0.5f, 0, 1);
    std::vector<float> gradients(core_->parameter_count(), 0.5f);
    gradients[5] = bad;
    push.set_gradients(FloatBytes(gradients));
    ExpectRefused(push, grpc::StatusCode::INVALID_ARGUMENT, "expected finite");
  }
}

TEST_F(ParameterServiceTest, AbsurdVersionsAndCountsAreRefused) {
  ExpectRefused(GoodPush(0.5f, 1000000, 1), grpc::StatusCode::INVALID_ARGUMENT, "1000000");
  ExpectRefused(GoodPush(0.5f, -5, 2), grpc::StatusCode::INVALID_ARGUMENT, "-5");
  pb::PushRequest push = GoodPush(0.5f, 0, 3);
  push.set_example_count(0);
  ExpectRefused(push, grpc::StatusCode::INVALID_ARGUMENT, "example");
}

TEST_F(ParameterServiceTest, StatusReportsBookkeeping) {
  pb::PushResponse pushed;
  ASSERT_TRUE(CallPush(GoodPush(0.5f, 0, 1), &pushed).ok());
  pb::EvaluationReport report;
  report.set_plan_fingerprint(plan_->fingerprint());
  report.set_worker_id(0);
  report.set_global_step(1);
  report.set_examples(200);
  report.set_correct(150);
  report.set_loss(0.7);
  pb::EvaluationAck ack;
  auto context = Context();
  ASSERT_TRUE(stub_->ReportEvaluation(context.get(), report, &ack).ok());
  core_->SetLastCheckpoint(absl::FromUnixSeconds(1700000000), 1, "/tmp/ckpt/shard-1");

  pb::StatusResponse status;
  auto status_context = Context();
  ASSERT_TRUE(stub_->GetStatus(status_context.get(), pb::StatusRequest(), &status).ok());
  EXPECT_EQ(status.shard_index(), 1);
  EXPECT_EQ(status.num_shards(), 2);
  EXPECT_EQ(status.plan_fingerprint(), plan_->fingerprint());
  EXPECT_EQ(status.model(), plan_->model());
  EXPECT_EQ(status.slices_size(),
            static_cast<int>(plan_->shard(1).parameters.size() + plan_->shard(1).state.size()));
  EXPECT_EQ(status.parameter_bytes(), core_->parameter_count() * 4);
  EXPECT_EQ(status.parameter_count(), core_->parameter_count());
  EXPECT_EQ(status.global_step(), 1);
  EXPECT_EQ(status.examples_seen(), 8);
  EXPECT_DOUBLE_EQ(status.epoch(), 0.008);
  EXPECT_EQ(status.pushes_applied(), 1);
  EXPECT_GT(status.bytes_in(), core_->parameter_count() * 4);
  EXPECT_GT(status.bytes_out(), 0);
  ASSERT_EQ(status.workers_size(), 4);  // every member, in id order
  EXPECT_EQ(status.workers(0).worker_id(), 0);
  EXPECT_EQ(status.workers(3).worker_id(), 3);
  EXPECT_EQ(status.workers(3).pushes(), 1);
  EXPECT_EQ(status.workers(3).examples(), 8);
  EXPECT_EQ(status.workers(3).steps(), 17);
  EXPECT_DOUBLE_EQ(status.workers(3).images_per_sec(), 123.5);
  EXPECT_LT(status.workers(3).seconds_since_last_seen(), 10);
  EXPECT_GE(status.workers(3).seconds_since_last_push(), 0);
  EXPECT_LT(status.workers(3).seconds_since_last_push(), 10);
  EXPECT_GE(status.workers(0).seconds_since_last_seen(), 0);   // reported an evaluation
  EXPECT_EQ(status.workers(0).seconds_since_last_push(), -1);  // but never pushed
  EXPECT_EQ(status.workers(1).seconds_since_last_seen(), -1);  // not heard from
  EXPECT_DOUBLE_EQ(status.eval_accuracy(), 0.75);
  EXPECT_EQ(status.eval_examples(), 200);
  EXPECT_EQ(status.eval_step(), 1);
  EXPECT_DOUBLE_EQ(status.last_checkpoint_unix_seconds(), 1700000000);
  EXPECT_EQ(status.last_checkpoint_step(), 1);
  EXPECT_EQ(status.last_checkpoint_path(), "/tmp/ckpt/shard-1");
  EXPECT_GE(status.uptime_seconds(), 0);
  EXPECT_FALSE(status.finishing());
}

TEST_F(ParameterServiceTest, EvaluationWithMoreCorrectThanExamplesIsRefused) {
  pb::EvaluationReport report;
  report.set_plan_fingerprint(plan_->fingerprint());
  report.set_examples(10);
  report.set_correct(11);
  pb::EvaluationAck ack;
  auto context = Context();
  EXPECT_EQ(stub_->ReportEvaluation(context.get(), report, &ack).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ParameterServiceTest, ChiefsTrainingCompleteFinishes) {
  EXPECT_FALSE(core_->WaitForFinishWithTimeout(absl::Milliseconds(1)));
  pb::FinishRequest finish;
  finish.set_plan_fingerprint(plan_->fingerprint());
  finish.set_worker_id(0);
  finish.set_training_complete(true);
  pb::FinishResponse response;
  auto context = Context();
  ASSERT_TRUE(stub_->Finish(context.get(), finish, &response).ok());
  core_->WaitForFinish();
  EXPECT_TRUE(core_->finishing());
  EXPECT_TRUE(core_->GetStatus().finishing());
}

TEST_F(ParameterServiceTest, FinishWithTheWrongPlanIsRefused) {
  pb::FinishRequest finish;
  finish.set_plan_fingerprint(plan_->fingerprint() + 1);
  finish.set_training_complete(true);
  pb::FinishResponse response;
  auto context = Context();
  EXPECT_EQ(stub_->Finish(context.get(), finish, &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_FALSE(core_->finishing());
}

class ParameterServiceTwoWorkersTest : public ParameterServiceTest {
 protected:
  ParameterServiceTwoWorkersTest() { num_workers_ = 2; }
};

TEST_F(ParameterServiceTwoWorkersTest, FinishesWhenEveryWorkerHasFinished) {
  for (int worker : {1, 0}) {
    EXPECT_FALSE(core_->finishing());
    pb::FinishRequest finish;
    finish.set_plan_fingerprint(plan_->fingerprint());
    finish.set_worker_id(worker);
    pb::FinishResponse response;
    auto context = Context();
    ASSERT_TRUE(stub_->Finish(context.get(), finish, &response).ok());
  }
  EXPECT_TRUE(core_->WaitForFinishWithTimeout(absl::Seconds(5)));
}

TEST_F(ParameterServiceTest, LeaseDataReachesTheCoreWhichRefusesItOnServer1) {
  pb::LeaseRequest lease;
  lease.set_plan_fingerprint(plan_->fingerprint());
  lease.set_worker_id(3);
  lease.mutable_data()->set_num_examples(100);
  lease.mutable_data()->set_blocks_per_epoch(10);
  lease.mutable_data()->set_epochs(1);
  pb::LeaseResponse response;
  auto context = Context();
  const grpc::Status status = stub_->LeaseData(context.get(), lease, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("--max_workers"));
}

TEST_F(ParameterServiceTest, AMessageBeyondTheShardsLargestIsRefusedByTheTransport) {
  // The limit follows the plan: this shard's payload and a margin, not a flat 512 MiB.
  pb::PushRequest push = GoodPush(0.5f, 0, 1);
  push.set_gradients(std::string(message_limit_ + 1024, '\0'));
  pb::PushResponse response;
  const grpc::Status status = CallPush(push, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_EQ(core_->shard().version(), 0);
  // The server goes on serving.
  EXPECT_TRUE(CallPush(GoodPush(0.5f, 0, 2), &response).ok());
}

TEST_F(ParameterServiceTest, APullThatIsNotAPullRequestIsAnInvalidArgument) {
  grpc::GenericStub generic(channel_);
  grpc::Slice junk(std::string("\xff\xff\xff\xff", 4));
  grpc::ByteBuffer request(&junk, 1), response;
  auto context = Context();
  absl::Notification done;
  grpc::Status result;
  generic.UnaryCall(context.get(), "/mobilenet.ps.v1.ParameterServer/Pull", grpc::StubOptions(),
                    &request, &response, [&](grpc::Status status) {
                      result = status;
                      done.Notify();
                    });
  done.WaitForNotification();
  EXPECT_EQ(result.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(result.error_message(), HasSubstr("not a PullRequest"));
}

TEST_F(ParameterServiceTest, HealthServiceReportsServing) {
  ASSERT_NE(server_.server->GetHealthCheckService(), nullptr);
  // grpc.health.v1.Health/Check with an empty HealthCheckRequest; the response
  // HealthCheckResponse{status: SERVING} encodes as 08 01.
  grpc::GenericStub generic(channel_);
  grpc::ByteBuffer request, response;
  grpc::Slice empty;
  request = grpc::ByteBuffer(&empty, 1);
  auto context = Context();
  absl::Notification done;
  grpc::Status result;
  generic.UnaryCall(context.get(), "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                    &response, [&](grpc::Status status) {
                      result = status;
                      done.Notify();
                    });
  done.WaitForNotification();
  ASSERT_TRUE(result.ok()) << result.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));
}

TEST_F(ParameterServiceTest, ReflectionListsTheService) {
  // grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo with
  // ServerReflectionRequest{list_services: ""} (field 7, empty string: 3a 00).
  grpc::GenericStub generic(channel_);
  grpc::CompletionQueue queue;
  auto context = Context();
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call = generic.PrepareCall(
      context.get(), "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &queue);
  void* tag = nullptr;
  bool ok = false;
  const auto step = [&](intptr_t expected) {
    ASSERT_TRUE(queue.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), expected);
    EXPECT_TRUE(ok);
  };
  call->StartCall(reinterpret_cast<void*>(1));
  step(1);
  grpc::Slice list_services(std::string("\x3a\x00", 2));
  call->Write(grpc::ByteBuffer(&list_services, 1), reinterpret_cast<void*>(2));
  step(2);
  grpc::ByteBuffer answer;
  call->Read(&answer, reinterpret_cast<void*>(3));
  step(3);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(answer.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  EXPECT_THAT(bytes, HasSubstr("mobilenet.ps.v1.ParameterServer"));
  EXPECT_THAT(bytes, HasSubstr("grpc.health.v1.Health"));
  call->WritesDone(reinterpret_cast<void*>(4));
  step(4);
  grpc::Status finished;
  call->Finish(&finished, reinterpret_cast<void*>(5));
  step(5);
  EXPECT_TRUE(finished.ok()) << finished.error_message();
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
}

TEST(ParameterServerLimitsTest, FollowTheLargestMessageAndTheWorkers) {
  EXPECT_EQ(ParameterServerLimits(1 << 20, 2).max_message_bytes, 1 << 20);
  EXPECT_EQ(ParameterServerLimits(1 << 20, 2).memory_budget_bytes, int64_t{64} << 20);  // floor
  EXPECT_EQ(ParameterServerLimits(20 << 20, 8).memory_budget_bytes, int64_t{4} * 10 * (20 << 20));
}

TEST(StartGrpcServerTest, RejectsAddressesWithoutPortAndPortsInUse) {
  absl::StatusOr<StartedServer> started = StartGrpcServer("127.0.0.1", {}, GrpcServerLimits());
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(started.status().message(), HasSubstr("127.0.0.1"));

  absl::StatusOr<StartedServer> first = StartGrpcServer("127.0.0.1:0", {}, GrpcServerLimits());
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string taken = absl::StrCat("127.0.0.1:", first->port);
  absl::StatusOr<StartedServer> second = StartGrpcServer(taken, {}, GrpcServerLimits());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr(taken));
  first->server->Shutdown();
}

TEST(GrpcStatusTest, ConvertsBothWaysKeepingCodeAndMessage) {
  const absl::Status status = absl::FailedPreconditionError("plan differs");
  const grpc::Status converted = ToGrpcStatus(status);
  EXPECT_EQ(converted.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(converted.error_message(), "plan differs");
  EXPECT_EQ(FromGrpcStatus(converted), status);
  EXPECT_EQ(FromGrpcStatus(converted, "parameter server 1").message(),
            "parameter server 1: plan differs");
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK, "ignored").ok());
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down")).code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace mobilenet
