#include "parameter_server/ps_runner.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parameter_server/core/model_checkpoint.h"
#include "parameter_server/core/sharding_plan.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

class ParameterServerRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("ps_runner_test_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    log_ = tmpfile();
  }
  void TearDown() override {
    std::filesystem::remove_all(dir_);
    fclose(log_);
  }

  ParameterServerRunnerOptions Options() {
    ParameterServerRunnerOptions o;
    o.task_index = 1;
    o.num_ps = 2;
    o.num_workers = 1;
    o.bind_address = "127.0.0.1:0";
    o.model.alpha = 0.25f;
    o.model.resolution = 32;
    o.model.input_channels = 1;
    o.model.num_classes = 10;
    o.shard.optimizer.kind = OptimizerKind::kSgd;
    o.shard.learning_rate.initial_learning_rate = 0.1f;
    o.shard.learning_rate.examples_per_epoch = 1000;
    o.checkpoint_dir = dir_.string();
    o.codec = ModelShardCheckpointCodec(o.model, *ShardingPlan::Create(o.model, o.num_ps), "sgd",
                                        o.task_index);
    o.checkpoint_every = absl::Hours(1);
    o.log_every = absl::ZeroDuration();
    o.log = log_;
    return o;
  }

  std::string LogText() {
    fflush(log_);
    rewind(log_);
    std::string text;
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, log_)) > 0) text.append(buffer, n);
    return text;
  }

  static std::unique_ptr<ps::v1::ParameterServer::Stub> Connect(int port) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    return ps::v1::ParameterServer::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials(), args));
  }

  static ps::v1::PullResponse Pull(ps::v1::ParameterServer::Stub& stub, const ShardingPlan& plan) {
    ps::v1::PullRequest request;
    request.set_plan_fingerprint(plan.fingerprint());
    request.set_shard_index(1);
    request.set_worker_id(0);
    ps::v1::PullResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const grpc::Status status = stub.Pull(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  static void Push(ps::v1::ParameterServer::Stub& stub, const ShardingPlan& plan,
                   int64_t from_version, uint64_t request_id) {
    int64_t count = 0;
    for (const TensorSlice& slice : plan.shard(1).parameters) count += slice.size();
    std::vector<float> gradients(count, 0.01f);
    ps::v1::PushRequest request;
    request.set_plan_fingerprint(plan.fingerprint());
    request.set_shard_index(1);
    request.set_worker_id(0);
    request.set_request_id(request_id);
    request.set_computed_from_version(from_version);
    request.set_example_count(10);
    request.set_gradients(std::string(reinterpret_cast<const char*>(gradients.data()),
                                      gradients.size() * sizeof(float)));
    ps::v1::PushResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const grpc::Status status = stub.Push(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  static void Finish(ps::v1::ParameterServer::Stub& stub, const ShardingPlan& plan,
                     bool training_complete) {
    ps::v1::FinishRequest request;
    request.set_plan_fingerprint(plan.fingerprint());
    request.set_worker_id(0);
    request.set_training_complete(training_complete);
    ps::v1::FinishResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ASSERT_TRUE(stub.Finish(&context, request, &response).ok());
  }

  std::filesystem::path dir_;
  FILE* log_ = nullptr;
};

TEST(FormatStalenessCountsTest, TheLineReportRunLogParses) {
  ps::v1::StatusResponse status;
  EXPECT_EQ(FormatStalenessCounts(status), "staleness of the 0 pushes applied by this run: none");
  status.set_pushes_applied(1236);
  for (const auto& [staleness, pushes] :
       std::vector<std::pair<int, int>>{{0, 200}, {1, 1000}, {2, 34}}) {
    ps::v1::StalenessCount& c = *status.add_staleness_counts();
    c.set_staleness(staleness);
    c.set_pushes(pushes);
  }
  EXPECT_EQ(FormatStalenessCounts(status),
            "staleness of the 1236 pushes applied by this run: 0:200 1:1000 2:34");
  while (status.staleness_counts_size() < kMaxStalenessCounts) {
    ps::v1::StalenessCount& c = *status.add_staleness_counts();
    c.set_staleness(status.staleness_counts_size() - 1);
  }
  status.mutable_staleness_counts()->rbegin()->set_pushes(2);
  EXPECT_THAT(FormatStalenessCounts(status), ::testing::EndsWith(" 63+:2"));
}

TEST_F(ParameterServerRunnerTest, StopWritesAFinalCheckpointThatTheNextStartRestores) {
  auto runner = ParameterServerRunner::Start(Options());
  ASSERT_TRUE(runner.ok()) << runner.status();
  ASSERT_GT((*runner)->port(), 0);
  const ShardingPlan plan = (*runner)->plan();
  auto stub = Connect((*runner)->port());
  const ps::v1::PullResponse initial = Pull(*stub, plan);
  EXPECT_EQ(initial.version(), 0);
  Push(*stub, plan, 0, 1);
  Push(*stub, plan, 1, 2);
  const ps::v1::PullResponse trained = Pull(*stub, plan);
  EXPECT_EQ(trained.version(), 2);
  EXPECT_NE(trained.parameters(), initial.parameters());

  // A stop request from another thread (as on SIGTERM) ends the wait.
  std::thread stopper([&]() { (*runner)->RequestStop(); });
  EXPECT_TRUE((*runner)->WaitAndShutdown().ok());
  stopper.join();
  runner->reset();
  EXPECT_TRUE(std::filesystem::exists(dir_ / "ps-1-of-2-2.mnck"));
  EXPECT_THAT(LogText(), HasSubstr("final checkpoint"));

  auto restarted = ParameterServerRunner::Start(Options());
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  auto stub2 = Connect((*restarted)->port());
  const ps::v1::PullResponse resumed = Pull(*stub2, plan);
  EXPECT_EQ(resumed.version(), 2);
  EXPECT_EQ(resumed.parameters(), trained.parameters());
  const ps::v1::StatusResponse status = (*restarted)->core().GetStatus();
  EXPECT_EQ(status.examples_seen(), 20);
  EXPECT_EQ(status.last_checkpoint_step(), 2);
  EXPECT_THAT(status.last_checkpoint_path(), HasSubstr("ps-1-of-2-2.mnck"));
  EXPECT_GT(status.last_checkpoint_unix_seconds(), 0);
  EXPECT_THAT(LogText(), HasSubstr("restored"));
  (*restarted)->RequestStop();
  EXPECT_TRUE((*restarted)->WaitAndShutdown().ok());
}

TEST_F(ParameterServerRunnerTest, TheChiefsFinishEndsServing) {
  auto runner = ParameterServerRunner::Start(Options());
  ASSERT_TRUE(runner.ok()) << runner.status();
  const ShardingPlan plan = (*runner)->plan();
  auto stub = Connect((*runner)->port());
  Push(*stub, plan, 0, 1);
  Finish(*stub, plan, /*training_complete=*/true);
  EXPECT_TRUE((*runner)->WaitAndShutdown().ok());
  EXPECT_THAT(LogText(), HasSubstr("training is over"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "ps-1-of-2-1.mnck"));
  // No longer serving.
  ps::v1::StatusResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  EXPECT_FALSE(stub->GetStatus(&context, ps::v1::StatusRequest(), &response).ok());
}

TEST_F(ParameterServerRunnerTest, WithoutExitWhenTrainingEndsItServesTheTrainedWeightsUntilStopped) {
  ParameterServerRunnerOptions o = Options();
  o.exit_when_training_ends = false;
  auto runner = ParameterServerRunner::Start(o);
  ASSERT_TRUE(runner.ok()) << runner.status();
  const ShardingPlan plan = (*runner)->plan();
  auto stub = Connect((*runner)->port());
  Push(*stub, plan, 0, 1);
  Finish(*stub, plan, /*training_complete=*/true);
  absl::Notification returned;
  absl::Status result;
  std::thread waiter([&]() {
    result = (*runner)->WaitAndShutdown();
    returned.Notify();
  });
  // The trained weights are checkpointed and still served.
  for (int i = 0; i < 200 && !absl::StrContains(LogText(), "serving the trained"); ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_THAT(LogText(), HasSubstr("serving the trained weights until stopped"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "ps-1-of-2-1.mnck"));
  EXPECT_EQ(Pull(*stub, plan).version(), 1);
  EXPECT_FALSE(returned.HasBeenNotified());
  (*runner)->RequestStop();
  waiter.join();
  EXPECT_TRUE(result.ok()) << result;
}

TEST_F(ParameterServerRunnerTest, PeriodicCheckpointsAreWrittenAndShownInStatus) {
  ParameterServerRunnerOptions o = Options();
  o.checkpoint_every = absl::Milliseconds(20);
  auto runner = ParameterServerRunner::Start(o);
  ASSERT_TRUE(runner.ok()) << runner.status();
  auto stub = Connect((*runner)->port());
  Push(*stub, (*runner)->plan(), 0, 1);
  for (int i = 0; i < 200 && (*runner)->core().GetStatus().last_checkpoint_step() < 1; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ((*runner)->core().GetStatus().last_checkpoint_step(), 1);
  EXPECT_TRUE(std::filesystem::exists(dir_ / "ps-1-of-2-1.mnck"));
  (*runner)->RequestStop();
  EXPECT_TRUE((*runner)->WaitAndShutdown().ok());
}

TEST_F(ParameterServerRunnerTest, ACheckpointOfAnotherModelIsRefused) {
  {
    ParameterServerRunnerOptions o = Options();
    o.model.alpha = 0.5f;  // another model in the same folder
    o.codec = ModelShardCheckpointCodec(o.model, *ShardingPlan::Create(o.model, o.num_ps), "sgd",
                                        o.task_index);
    auto runner = ParameterServerRunner::Start(o);
    ASSERT_TRUE(runner.ok()) << runner.status();
    (*runner)->RequestStop();
    ASSERT_TRUE((*runner)->WaitAndShutdown().ok());
  }
  ASSERT_TRUE(std::filesystem::exists(dir_ / "ps-1-of-2-0.mnck"));
  auto runner = ParameterServerRunner::Start(Options());
  ASSERT_FALSE(runner.ok());
  EXPECT_EQ(runner.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(runner.status().message()), HasSubstr("ps-1-of-2-0.mnck"));
}

TEST_F(ParameterServerRunnerTest, BadOptionsAreRefused) {
  ParameterServerRunnerOptions o = Options();
  o.task_index = 2;
  EXPECT_EQ(ParameterServerRunner::Start(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options();
  o.model.alpha = -1;
  EXPECT_FALSE(ParameterServerRunner::Start(o).ok());
  o = Options();
  o.codec = {};
  EXPECT_EQ(ParameterServerRunner::Start(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ParameterServerRunnerTest, AnAddressInUseIsUnavailable) {
  auto first = ParameterServerRunner::Start(Options());
  ASSERT_TRUE(first.ok()) << first.status();
  ParameterServerRunnerOptions o = Options();
  o.bind_address = absl::StrCat("127.0.0.1:", (*first)->port());
  o.checkpoint_dir.clear();
  auto second = ParameterServerRunner::Start(o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr(o.bind_address));
}


TEST_F(ParameterServerRunnerTest, AnExposedAddressNeedsSecurityOrInsecure) {
  ParameterServerRunnerOptions o = Options();
  o.bind_address = "0.0.0.0:0";
  absl::StatusOr<std::unique_ptr<ParameterServerRunner>> refused = ParameterServerRunner::Start(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("deploy/make_certs.sh"));
  o.security.insecure = true;
  auto runner = ParameterServerRunner::Start(o);
  ASSERT_TRUE(runner.ok()) << runner.status();
  EXPECT_THAT(LogText(), HasSubstr("WARNING: listening on 0.0.0.0"));
  ps::v1::StatusResponse status;
  grpc::ClientContext context;
  ASSERT_TRUE(Connect((*runner)->port())->GetStatus(&context, {}, &status).ok());
  EXPECT_TRUE(status.insecure());
}

TEST_F(ParameterServerRunnerTest, TheHealthAddressServesHealthAndNothingElse) {
  ParameterServerRunnerOptions o = Options();
  o.health_address = "127.0.0.1:0";
  auto runner = ParameterServerRunner::Start(o);
  ASSERT_TRUE(runner.ok()) << runner.status();
  ASSERT_GT((*runner)->health_port(), 0);
  ASSERT_NE((*runner)->health_port(), (*runner)->port());
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*runner)->health_port()),
                          grpc::InsecureChannelCredentials());
  // grpc.health.v1.Health/Check with an empty request; SERVING encodes as 08 01.
  grpc::GenericStub generic(channel);
  const auto call = [&](const std::string& method, std::string* answer) {
    grpc::Slice empty;
    grpc::ByteBuffer request(&empty, 1), response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    absl::Notification done;
    grpc::Status result;
    generic.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                      [&](grpc::Status status) {
                        result = status;
                        done.Notify();
                      });
    done.WaitForNotification();
    std::vector<grpc::Slice> slices;
    answer->clear();
    if (result.ok() && response.Dump(&slices).ok()) {
      for (const grpc::Slice& slice : slices) {
        answer->append(reinterpret_cast<const char*>(slice.begin()), slice.size());
      }
    }
    return result.error_code();
  };
  std::string answer;
  EXPECT_EQ(call("/grpc.health.v1.Health/Check", &answer), grpc::StatusCode::OK);
  EXPECT_EQ(answer, std::string("\x08\x01", 2));
  EXPECT_EQ(call("/mobilenet.ps.v1.ParameterServer/GetStatus", &answer),
            grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(ParameterServerRunnerTest, MetricsAreServedOnlyWhenAskedAndABadAddressIsRefused) {
  {
    auto runner = ParameterServerRunner::Start(Options());
    ASSERT_TRUE(runner.ok()) << runner.status();
    EXPECT_EQ((*runner)->metrics_port(), 0);
  }
  ParameterServerRunnerOptions o = Options();
  o.metrics_address = "127.0.0.1:0";
  auto runner = ParameterServerRunner::Start(o);
  ASSERT_TRUE(runner.ok()) << runner.status();
  EXPECT_GT((*runner)->metrics_port(), 0);
  EXPECT_NE((*runner)->metrics_port(), (*runner)->port());

  o = Options();
  o.metrics_address = "localhost";
  auto refused = ParameterServerRunner::Start(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("\"localhost\""));
}

}  // namespace
}  // namespace mobilenet
