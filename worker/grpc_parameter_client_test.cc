#include "worker/grpc_parameter_client.h"

#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/float_conversion.h"
#include "common/grpc_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parameter_server/grpc_server.h"
#include "parameter_server/parameter_service.h"
#include "worker/in_process_parameter_client.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

MobileNetConfig SmallModel(float alpha = 0.25f) {
  MobileNetConfig config;
  config.alpha = alpha;
  config.resolution = 32;
  config.input_channels = 1;
  config.num_classes = 10;
  return config;
}

ParameterShardConfig ShardConfig(float weight_ema_decay = 0.0f) {
  ParameterShardConfig config;
  config.weight_ema_decay = weight_ema_decay;
  config.seed = 11;
  config.learning_rate.examples_per_epoch = 640;
  config.learning_rate.epochs_per_decay = 0.1f;  // the rate changes within the test
  config.moving_average_decay = 0.9f;
  return config;
}

// The shards of `plan`, each served by its own gRPC server on 127.0.0.1 (started on
// demand, so a test can start one late).
class LocalCluster {
 public:
  // Servers of `plan` for a cluster of 5 workers.
  explicit LocalCluster(const ShardingPlan& plan, float weight_ema_decay = 0.0f) : plan_(plan) {
    for (int i = 0; i < plan.num_shards(); ++i) {
      CoreOptions options;
      options.shard_index = i;
      options.num_workers = 5;
      absl::StatusOr<std::unique_ptr<ParameterServerCore>> core =
          ParameterServerCore::Create(plan, ShardConfig(weight_ema_decay), options);
      EXPECT_TRUE(core.ok()) << core.status();
      cores_.push_back(std::move(*core));
      services_.push_back(std::make_unique<ParameterService>(cores_.back().get()));
      servers_.emplace_back();
    }
  }
  ~LocalCluster() {
    for (StartedServer& server : servers_) {
      if (server.server) server.server->Shutdown();
    }
  }

  // Starts server `i` on `port` (0: any free port); returns its address.
  std::string Start(int i, int port = 0) {
    absl::StatusOr<StartedServer> started = StartGrpcServer(
        absl::StrCat("127.0.0.1:", port), {services_[i].get()},
        ParameterServerLimits(MessageLimitForPayload(plan_.shard_bytes(i)), 5));
    EXPECT_TRUE(started.ok()) << started.status();
    if (!started.ok()) return "";
    servers_[i] = std::move(*started);
    return absl::StrCat("127.0.0.1:", servers_[i].port);
  }

  std::vector<std::string> StartAll() {
    std::vector<std::string> addresses;
    for (int i = 0; i < plan_.num_shards(); ++i) addresses.push_back(Start(i));
    return addresses;
  }

  ParameterServerCore* core(int i) { return cores_[i].get(); }
  std::vector<ParameterServerCore*> core_pointers() {
    std::vector<ParameterServerCore*> pointers;
    for (auto& core : cores_) pointers.push_back(core.get());
    return pointers;
  }

 private:
  const ShardingPlan& plan_;
  std::vector<std::unique_ptr<ParameterServerCore>> cores_;
  std::vector<std::unique_ptr<ParameterService>> services_;
  std::vector<StartedServer> servers_;
};

// A port nothing listens on right now (a server is started there and stopped).
int FreePort() {
  absl::StatusOr<StartedServer> probe = StartGrpcServer("127.0.0.1:0", {}, GrpcServerLimits());
  EXPECT_TRUE(probe.ok()) << probe.status();
  const int port = probe->port;
  probe->server->Shutdown();
  return port;
}

class GrpcParameterClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(SmallModel(), 2);
    ASSERT_TRUE(plan.ok()) << plan.status();
    plan_ = std::make_unique<ShardingPlan>(*std::move(plan));
    cluster_ = std::make_unique<LocalCluster>(*plan_);
  }

  std::unique_ptr<GrpcParameterClient> MakeClient(std::vector<std::string> addresses,
                                                  GrpcParameterClientOptions options = {}) {
    absl::StatusOr<std::unique_ptr<GrpcParameterClient>> client =
        GrpcParameterClient::Create(*plan_, std::move(addresses), options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }

  int64_t parameter_count() const { return plan_->parameter_layout().total_size(); }
  int64_t state_count() const { return plan_->state_layout().total_size(); }

  std::unique_ptr<ShardingPlan> plan_;
  std::unique_ptr<LocalCluster> cluster_;
};

// Deterministic pseudo-gradients of step `step`.
std::vector<float> Gradients(int64_t count, int step) {
  std::vector<float> values(count);
  for (int64_t i = 0; i < count; ++i) {
    values[i] = 0.01f * std::sin(0.37f * static_cast<float>(i) + 1.3f * static_cast<float>(step));
  }
  return values;
}

TEST_F(GrpcParameterClientTest, TrainsExactlyLikeTheInProcessClient) {
  std::unique_ptr<GrpcParameterClient> remote = MakeClient(cluster_->StartAll());
  ASSERT_NE(remote, nullptr);
  LocalCluster reference_shards(*plan_);
  absl::StatusOr<std::unique_ptr<InProcessParameterClient>> local =
      InProcessParameterClient::Create(*plan_, reference_shards.core_pointers(), 1);
  ASSERT_TRUE(local.ok()) << local.status();

  std::vector<float> remote_params(parameter_count()), local_params(parameter_count());
  std::vector<float> remote_state(state_count()), local_state(state_count());
  for (int step = 0; step < 4; ++step) {
    absl::StatusOr<ModelVersion> remote_version =
        remote->Pull(absl::MakeSpan(remote_params), absl::MakeSpan(remote_state));
    absl::StatusOr<ModelVersion> local_version =
        (*local)->Pull(absl::MakeSpan(local_params), absl::MakeSpan(local_state));
    ASSERT_TRUE(remote_version.ok()) << remote_version.status();
    ASSERT_TRUE(local_version.ok()) << local_version.status();
    EXPECT_EQ(remote_version->shard_versions, local_version->shard_versions);
    ASSERT_EQ(remote_params, local_params) << "step " << step;
    ASSERT_EQ(remote_state, local_state) << "step " << step;

    const std::vector<float> gradients = Gradients(parameter_count(), step);
    std::vector<float> stats(state_count(), 0.1f * static_cast<float>(step + 1));
    PushRequest push;
    push.worker_id = 1;
    push.request_id = static_cast<uint64_t>(step + 1);
    push.example_count = 64;
    push.gradients = gradients;
    push.batch_stats = stats;
    push.computed_from = *remote_version;
    absl::StatusOr<PushResult> remote_result = remote->Push(push);
    push.computed_from = *local_version;
    absl::StatusOr<PushResult> local_result = (*local)->Push(push);
    ASSERT_TRUE(remote_result.ok()) << remote_result.status();
    ASSERT_TRUE(local_result.ok()) << local_result.status();
    EXPECT_EQ(remote_result->version.shard_versions, local_result->version.shard_versions);
    EXPECT_EQ(remote_result->learning_rate, local_result->learning_rate);
    EXPECT_EQ(remote_result->max_staleness, local_result->max_staleness);
  }
  ASSERT_TRUE(remote->Pull(absl::MakeSpan(remote_params), absl::MakeSpan(remote_state)).ok());
  ASSERT_TRUE((*local)->Pull(absl::MakeSpan(local_params), absl::MakeSpan(local_state)).ok());
  EXPECT_EQ(remote_params, local_params);
  EXPECT_EQ(remote_state, local_state);

  absl::StatusOr<std::vector<ps::v1::StatusResponse>> status = AllStatuses(*remote);
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(status->size(), 2u);
  EXPECT_EQ(GlobalStep(*status), 4);
  EXPECT_EQ((*status)[1].examples_seen(), 256);
  EXPECT_EQ((*status)[0].pushes_applied(), 4);
  EXPECT_EQ((*status)[0].workers(1).examples(), 256);
  EXPECT_EQ((*status)[1].parameter_count() + (*status)[0].parameter_count(), parameter_count());
}

// `values` as they arrive after a trip through `dtype`.
std::vector<float> Rounded(WireDtype dtype, const std::vector<float>& values) {
  std::vector<char> bytes(values.size() * BytesPerValue(dtype));
  EncodeFloats(dtype, values, bytes.data());
  std::vector<float> back(values.size());
  DecodeFloats(dtype, bytes.data(), absl::MakeSpan(back));
  return back;
}

// What error feedback sends of `gradients` with `residual` (the full model's, in any
// order: each value is rounded on its own), updating the residual.
std::vector<float> SentWithFeedback(WireDtype dtype, const std::vector<float>& gradients,
                                    std::vector<float>& residual) {
  std::vector<char> bytes(gradients.size() * BytesPerValue(dtype));
  EncodeWithErrorFeedback(dtype, gradients, residual, absl::MakeSpan(residual), bytes.data());
  std::vector<float> sent(gradients.size());
  DecodeFloats(dtype, bytes.data(), absl::MakeSpan(sent));
  return sent;
}

// A client pushing and pulling in `dtype` against servers of its own, beside a reference
// cluster that is sent in float32 what the client's compressed payloads decode to.
class WireFormatTest : public GrpcParameterClientTest,
                       public ::testing::WithParamInterface<WireDtype> {
 protected:
  void SetUp() override {
    GrpcParameterClientTest::SetUp();
    GrpcParameterClientOptions options;
    options.worker_id = 1;
    options.push_dtype = GetParam();
    options.pull_dtype = GetParam();
    remote_ = MakeClient(cluster_->StartAll(), options);
    reference_shards_ = std::make_unique<LocalCluster>(*plan_);
    absl::StatusOr<std::unique_ptr<InProcessParameterClient>> local =
        InProcessParameterClient::Create(*plan_, reference_shards_->core_pointers(), 1);
    ASSERT_TRUE(local.ok()) << local.status();
    local_ = std::move(*local);
  }

  // Pushes `gradients` (request `id`) through the client and `sent` in float32 to the
  // reference; expects both answers alike.
  void PushBoth(uint64_t id, const std::vector<float>& gradients, const std::vector<float>& sent,
                bool duplicate_only_remote = false) {
    const std::vector<float> stats(state_count(), 0.25f);
    PushRequest push;
    push.worker_id = 1;
    push.request_id = id;
    push.example_count = 32;
    push.gradients = gradients;
    push.batch_stats = stats;
    push.computed_from.shard_versions = {0, 0};
    absl::StatusOr<PushResult> remote = remote_->Push(push);
    ASSERT_TRUE(remote.ok()) << remote.status();
    if (duplicate_only_remote) return;
    push.gradients = sent;
    absl::StatusOr<PushResult> local = local_->Push(push);
    ASSERT_TRUE(local.ok()) << local.status();
    EXPECT_EQ(remote->version.shard_versions, local->version.shard_versions);
  }

  // Expects the servers' float32 weights and statistics to be the reference's, and a
  // training pull to be them rounded to the wire format.
  void ExpectSameServers() {
    std::vector<float> remote_params(parameter_count()), local_params(parameter_count());
    std::vector<float> remote_state(state_count()), local_state(state_count());
    ASSERT_TRUE(remote_->Pull(absl::MakeSpan(remote_params), absl::MakeSpan(remote_state)).ok());
    ASSERT_TRUE(local_->Pull(absl::MakeSpan(local_params), absl::MakeSpan(local_state)).ok());
    EXPECT_EQ(remote_params, local_params);  // reads are float32: the masters exactly
    EXPECT_EQ(remote_state, local_state);
    std::vector<float> training(parameter_count());
    absl::StatusOr<ModelVersion> version = remote_->PullForTraining(absl::MakeSpan(training));
    ASSERT_TRUE(version.ok()) << version.status();
    EXPECT_EQ(training, Rounded(GetParam(), local_params));
  }

  std::unique_ptr<GrpcParameterClient> remote_;
  std::unique_ptr<LocalCluster> reference_shards_;
  std::unique_ptr<InProcessParameterClient> local_;
};

TEST_P(WireFormatTest, PullsAndPushesRoundTripWithErrorFeedback) {
  ExpectSameServers();
  std::vector<float> residual(parameter_count(), 0.0f);
  for (int step = 0; step < 3; ++step) {
    const std::vector<float> gradients = Gradients(parameter_count(), step);
    PushBoth(step + 1, gradients, SentWithFeedback(GetParam(), gradients, residual));
    ExpectSameServers();
  }
  if (GetParam() != WireDtype::kFloat32) {
    // The rounding showed (else the comparison above proves nothing about the feedback).
    EXPECT_NE(Rounded(GetParam(), Gradients(parameter_count(), 0)),
              Gradients(parameter_count(), 0));
  }
  absl::StatusOr<std::vector<ps::v1::StatusResponse>> status = AllStatuses(*remote_);
  ASSERT_TRUE(status.ok()) << status.status();
  // The servers counted what travelled: 2 or 4 bytes a gradient in, per format.
  const int64_t in = (*status)[0].bytes_in() + (*status)[1].bytes_in();
  EXPECT_GT(in, 3 * parameter_count() * static_cast<int64_t>(BytesPerValue(GetParam())));
  EXPECT_LT(in, 3 * parameter_count() * static_cast<int64_t>(BytesPerValue(GetParam())) +
                    3 * state_count() * 4 + 4096);
}

TEST_P(WireFormatTest, ARetriedPushAddsItsResidualOnce) {
  std::vector<float> residual(parameter_count(), 0.0f);
  const std::vector<float> first = Gradients(parameter_count(), 0);
  PushBoth(1, first, SentWithFeedback(GetParam(), first, residual));
  // The same request again: a duplicate everywhere, which must leave the residual alone...
  PushBoth(1, first, {}, /*duplicate_only_remote=*/true);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(cluster_->core(i)->GetStatus().pushes_duplicate(), 1);
  // ...so that the next push carries exactly the first one's residual.
  const std::vector<float> second = Gradients(parameter_count(), 1);
  PushBoth(2, second, SentWithFeedback(GetParam(), second, residual));
  ExpectSameServers();
}

INSTANTIATE_TEST_SUITE_P(EveryFormat, WireFormatTest,
                         ::testing::Values(WireDtype::kFloat32, WireDtype::kBfloat16,
                                           WireDtype::kFloat16),
                         [](const ::testing::TestParamInfo<WireDtype>& info) {
                           return std::string(WireDtypeName(info.param));
                         });

TEST(DescribeWireFormatsTest, NamesBothDirections) {
  GrpcParameterClientOptions options;
  options.push_dtype = WireDtype::kBfloat16;
  options.pull_dtype = WireDtype::kFloat16;
  EXPECT_EQ(DescribeWireFormats(options), "gradients bf16 (error feedback), training weights fp16");
  EXPECT_EQ(DescribeWireFormats({}), "gradients fp32, training weights fp32");
}

TEST_F(GrpcParameterClientTest, PullsTheWeightAverageLikeTheInProcessClient) {
  LocalCluster averaging(*plan_, /*weight_ema_decay=*/0.9f);
  std::unique_ptr<GrpcParameterClient> remote = MakeClient(averaging.StartAll());
  ASSERT_NE(remote, nullptr);
  LocalCluster reference_shards(*plan_, /*weight_ema_decay=*/0.9f);
  absl::StatusOr<std::unique_ptr<InProcessParameterClient>> local =
      InProcessParameterClient::Create(*plan_, reference_shards.core_pointers(), 1);
  ASSERT_TRUE(local.ok()) << local.status();
  std::vector<float> params(parameter_count());
  for (int step = 0; step < 2; ++step) {
    for (ParameterClient* client : {static_cast<ParameterClient*>(remote.get()),
                                    static_cast<ParameterClient*>(local->get())}) {
      absl::StatusOr<ModelVersion> version = client->Pull(absl::MakeSpan(params), {});
      ASSERT_TRUE(version.ok()) << version.status();
      const std::vector<float> gradients = Gradients(parameter_count(), step);
      PushRequest push;
      push.worker_id = 1;
      push.request_id = static_cast<uint64_t>(step + 1);
      push.example_count = 64;
      push.gradients = gradients;
      push.computed_from = *version;
      ASSERT_TRUE(client->Push(push).ok());
    }
  }
  std::vector<float> remote_average(parameter_count()), local_average(parameter_count());
  std::vector<float> remote_state(state_count()), local_state(state_count());
  absl::StatusOr<ModelVersion> version = remote->Pull(
      absl::MakeSpan(remote_average), absl::MakeSpan(remote_state), WeightsKind::kAverage);
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(version->global_step(), 2);
  ASSERT_TRUE(
      (*local)
          ->Pull(absl::MakeSpan(local_average), absl::MakeSpan(local_state), WeightsKind::kAverage)
          .ok());
  EXPECT_EQ(remote_average, local_average);
  EXPECT_EQ(remote_state, local_state);
  ASSERT_TRUE(remote->Pull(absl::MakeSpan(params), {}).ok());
  EXPECT_NE(remote_average, params);
  absl::StatusOr<std::vector<ps::v1::StatusResponse>> status = AllStatuses(*remote);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ((*status)[1].weight_ema_decay(), 0.9f);

  // Servers keeping no average refuse the pull, naming the flag.
  std::unique_ptr<GrpcParameterClient> plain = MakeClient(cluster_->StartAll());
  ASSERT_NE(plain, nullptr);
  absl::Status refused = plain->Pull(absl::MakeSpan(params), {}, WeightsKind::kAverage).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("--weight_ema_decay"));
}

TEST_F(GrpcParameterClientTest, RetriedPushIsAppliedOnce) {
  std::unique_ptr<GrpcParameterClient> client = MakeClient(cluster_->StartAll());
  std::vector<float> params(parameter_count());
  absl::StatusOr<ModelVersion> version = client->Pull(absl::MakeSpan(params), {});
  ASSERT_TRUE(version.ok()) << version.status();
  const std::vector<float> gradients = Gradients(parameter_count(), 0);
  PushRequest push;
  push.worker_id = 2;
  push.request_id = 99;
  push.example_count = 8;
  push.gradients = gradients;
  push.computed_from = *version;
  absl::StatusOr<PushResult> first = client->Push(push);
  ASSERT_TRUE(first.ok()) << first.status();
  std::vector<float> after_first(parameter_count());
  ASSERT_TRUE(client->Pull(absl::MakeSpan(after_first), {}).ok());
  absl::StatusOr<PushResult> again = client->Push(push);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->version.shard_versions, first->version.shard_versions);
  std::vector<float> after_again(parameter_count());
  ASSERT_TRUE(client->Pull(absl::MakeSpan(after_again), {}).ok());
  EXPECT_EQ(after_again, after_first);
  EXPECT_NE(after_first, params);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(cluster_->core(i)->shard().version(), 1);
    EXPECT_EQ(cluster_->core(i)->GetStatus().pushes_duplicate(), 1);
  }
}

TEST_F(GrpcParameterClientTest, NonFiniteGradientIsRefusedBeforeSending) {
  std::unique_ptr<GrpcParameterClient> client = MakeClient(cluster_->StartAll());
  std::vector<float> gradients = Gradients(parameter_count(), 0);
  gradients[parameter_count() - 1] = std::numeric_limits<float>::infinity();
  PushRequest push;
  push.example_count = 8;
  push.gradients = gradients;
  push.computed_from.shard_versions = {0, 0};
  absl::StatusOr<PushResult> result = client->Push(push);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("Logits"));
  EXPECT_THAT(result.status().message(), HasSubstr("inf"));
  for (int i = 0; i < 2; ++i) EXPECT_EQ(cluster_->core(i)->GetStatus().pushes_invalid(), 0);
}

TEST_F(GrpcParameterClientTest, WrongSizesAndVersionCountsAreRefused) {
  std::unique_ptr<GrpcParameterClient> client = MakeClient(cluster_->StartAll());
  std::vector<float> small(10);
  EXPECT_EQ(client->Pull(absl::MakeSpan(small), {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<float> gradients = Gradients(parameter_count(), 0);
  PushRequest push;
  push.example_count = 8;
  push.gradients = gradients;
  push.computed_from.shard_versions = {0};
  absl::StatusOr<PushResult> result = client->Push(push);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("expected 2"));
}

TEST_F(GrpcParameterClientTest, ServerErrorsNameTheServer) {
  const std::vector<std::string> addresses = cluster_->StartAll();
  std::unique_ptr<GrpcParameterClient> client = MakeClient(addresses);
  std::vector<float> params(parameter_count());
  ASSERT_TRUE(client->Pull(absl::MakeSpan(params), {}).ok());
  const std::vector<float> gradients = Gradients(parameter_count(), 0);
  PushRequest push;
  push.example_count = 8;
  push.gradients = gradients;
  push.computed_from.shard_versions = {0, 5};  // shard 1 has no version 5 yet
  absl::StatusOr<PushResult> result = client->Push(push);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(),
              HasSubstr(absl::StrCat("parameter server 1 (", addresses[1], ") Push")));
  std::vector<float> after(parameter_count());
  ASSERT_TRUE(client->Pull(absl::MakeSpan(after), {}).ok());
  EXPECT_EQ(cluster_->core(1)->shard().version(), 0);
}

TEST_F(GrpcParameterClientTest, AnotherModelsPlanIsRefused) {
  const std::vector<std::string> addresses = cluster_->StartAll();
  absl::StatusOr<ShardingPlan> other = ShardingPlan::Create(SmallModel(0.5f), 2);
  ASSERT_TRUE(other.ok());
  absl::StatusOr<std::unique_ptr<GrpcParameterClient>> client =
      GrpcParameterClient::Create(*other, addresses);
  ASSERT_TRUE(client.ok()) << client.status();
  std::vector<float> params(other->parameter_layout().total_size());
  absl::Status status = (*client)->Pull(absl::MakeSpan(params), {}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("alpha=0.5"));
  EXPECT_THAT(status.message(), HasSubstr("alpha=0.25"));
  EXPECT_THAT(status.message(), HasSubstr(FormatFingerprint(other->fingerprint())));
  EXPECT_THAT(status.message(), HasSubstr(FormatFingerprint(plan_->fingerprint())));
}

TEST_F(GrpcParameterClientTest, WaitsForAServerThatStartsLate) {
  const std::string first = cluster_->Start(0);
  const int late_port = FreePort();
  GrpcParameterClientOptions options;
  options.patience = absl::Seconds(20);
  options.initial_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(200);
  int retries = 0;
  options.on_retry = [&retries](const std::string& message) { ++retries; };
  // Called on the calling thread, as on_retry is, one for one.
  int unavailable_pulls = 0, other_causes = 0;
  options.on_retry_cause = [&](absl::string_view rpc, grpc::StatusCode code) {
    ++(rpc == "Pull" && code == grpc::StatusCode::UNAVAILABLE ? unavailable_pulls : other_causes);
  };
  std::unique_ptr<GrpcParameterClient> client =
      MakeClient({first, absl::StrCat("127.0.0.1:", late_port)}, options);
  std::vector<float> params(parameter_count());
  absl::StatusOr<ModelVersion> version;
  std::thread puller([&] { version = client->Pull(absl::MakeSpan(params), {}); });
  absl::SleepFor(absl::Milliseconds(500));
  cluster_->Start(1, late_port);
  puller.join();
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(version->shard_versions, std::vector<int64_t>({0, 0}));
  EXPECT_GT(retries, 0);
  EXPECT_EQ(unavailable_pulls, retries);
  EXPECT_EQ(other_causes, 0);
  std::vector<float> expected(parameter_count());
  absl::StatusOr<std::unique_ptr<InProcessParameterClient>> local =
      InProcessParameterClient::Create(*plan_, cluster_->core_pointers(), kToolWorkerId);
  ASSERT_TRUE(local.ok());
  ASSERT_TRUE((*local)->Pull(absl::MakeSpan(expected), {}).ok());
  EXPECT_EQ(params, expected);
}

TEST_F(GrpcParameterClientTest, GivesUpOnAServerThatNeverComesAfterThePatience) {
  const std::string first = cluster_->Start(0);
  const std::string missing = absl::StrCat("127.0.0.1:", FreePort());
  GrpcParameterClientOptions options;
  options.patience = absl::Milliseconds(600);
  options.initial_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(100);
  std::unique_ptr<GrpcParameterClient> client = MakeClient({first, missing}, options);
  std::vector<float> params(parameter_count());
  const absl::Time begin = absl::Now();
  absl::Status status = client->Pull(absl::MakeSpan(params), {}).status();
  const absl::Duration took = absl::Now() - begin;
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("parameter server 1 (", missing, ")")));
  EXPECT_THAT(status.message(), HasSubstr("gave up after"));
  EXPECT_GE(took, absl::Milliseconds(400));
  EXPECT_LT(took, absl::Seconds(5));

  // The status tool reports the live server and the error of the missing one.
  std::vector<absl::StatusOr<ps::v1::StatusResponse>> statuses =
      QueryParameterServerStatus({first, missing}, absl::Seconds(2));
  ASSERT_EQ(statuses.size(), 2u);
  ASSERT_TRUE(statuses[0].ok()) << statuses[0].status();
  EXPECT_EQ(statuses[0]->shard_index(), 0);
  ASSERT_FALSE(statuses[1].ok());
  EXPECT_THAT(statuses[1].status().message(), HasSubstr(missing));
}

TEST_F(GrpcParameterClientTest, PushTimingOutIsRetriedThenReportedAndAppliedAtMostOnce) {
  const std::vector<std::string> addresses = cluster_->StartAll();
  GrpcParameterClientOptions impatient;
  impatient.rpc_timeout = absl::Microseconds(1);  // every attempt misses its deadline
  impatient.patience = absl::Milliseconds(300);
  impatient.initial_backoff = absl::Milliseconds(10);
  impatient.max_backoff = absl::Milliseconds(50);
  std::unique_ptr<GrpcParameterClient> client = MakeClient(addresses, impatient);
  const std::vector<float> gradients = Gradients(parameter_count(), 0);
  PushRequest push;
  push.worker_id = 4;
  push.request_id = 1;
  push.example_count = 8;
  push.gradients = gradients;
  push.computed_from.shard_versions = {0, 0};
  absl::StatusOr<PushResult> result = client->Push(push);  // returns: no hang
  // On a loaded machine a 1 us deadline is occasionally still met on loopback; the
  // exactly-once check below holds either way.
  if (!result.ok()) {
    EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded) << result.status();
    EXPECT_THAT(result.status().message(), HasSubstr("gave up after"));
  }

  // Resending the same request with enough time: every shard counts it exactly once.
  std::unique_ptr<GrpcParameterClient> patient = MakeClient(addresses);
  absl::StatusOr<PushResult> resent = patient->Push(push);
  ASSERT_TRUE(resent.ok()) << resent.status();
  EXPECT_EQ(resent->version.shard_versions, std::vector<int64_t>({1, 1}));
  for (int i = 0; i < 2; ++i) EXPECT_EQ(cluster_->core(i)->shard().version(), 1);
}

TEST_F(GrpcParameterClientTest, EvaluationFinishAndProgressReachEveryServer) {
  std::unique_ptr<GrpcParameterClient> client = MakeClient(cluster_->StartAll());
  client->set_progress(250.0, 12);
  std::vector<float> params(parameter_count());
  absl::StatusOr<ModelVersion> version = client->Pull(absl::MakeSpan(params), {});
  ASSERT_TRUE(version.ok());
  const std::vector<float> gradients = Gradients(parameter_count(), 0);
  PushRequest push;
  push.worker_id = 0;
  push.request_id = 1;
  push.example_count = 8;
  push.gradients = gradients;
  push.computed_from = *version;
  ASSERT_TRUE(client->Push(push).ok());
  EvaluationResult evaluation;
  evaluation.examples = 100;
  evaluation.correct = 91;
  evaluation.loss = 0.3;
  evaluation.global_step = 1;
  ASSERT_TRUE(client->ReportEvaluation(0, evaluation).ok());
  ASSERT_TRUE(client->Finish(0, /*training_complete=*/true).ok());
  std::vector<absl::StatusOr<ps::v1::StatusResponse>> statuses = client->GetStatus();
  ASSERT_EQ(statuses.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].status();
    EXPECT_EQ(statuses[i]->shard_index(), i);
    EXPECT_DOUBLE_EQ(statuses[i]->eval_accuracy(), 0.91);
    EXPECT_TRUE(statuses[i]->finishing());
    EXPECT_TRUE(statuses[i]->training_complete());
    ASSERT_EQ(statuses[i]->workers_size(), 5);
    EXPECT_DOUBLE_EQ(statuses[i]->workers(0).images_per_sec(), 250.0);
    EXPECT_EQ(statuses[i]->workers(0).steps(), 12);
    EXPECT_TRUE(statuses[i]->workers(0).finished());
  }
}

TEST_F(GrpcParameterClientTest, AServerOfAnotherShapeEndsTheCallAtOnceWhileAnotherIsDown) {
  // The worker is told of 2 servers; the first was started for a plan of 1, the second
  // does not exist. The first answer says the cluster is wrong: no waiting out the
  // patience for the second (before, this took the whole patience, 300 s by default).
  absl::StatusOr<ShardingPlan> single = ShardingPlan::Create(SmallModel(), 1);
  ASSERT_TRUE(single.ok());
  LocalCluster one(*single);
  const std::string only = one.Start(0);
  const std::string missing = absl::StrCat("127.0.0.1:", FreePort());
  GrpcParameterClientOptions options;
  options.patience = absl::Seconds(60);
  options.max_backoff = absl::Milliseconds(500);
  std::unique_ptr<GrpcParameterClient> client = MakeClient({only, missing}, options);
  const absl::Time begin = absl::Now();
  std::vector<absl::StatusOr<ps::v1::StatusResponse>> statuses = client->GetStatus();
  EXPECT_LT(absl::Now() - begin, absl::Seconds(10));
  ASSERT_EQ(statuses.size(), 2u);
  EXPECT_EQ(statuses[0].status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(statuses[0].status().message(), HasSubstr("with 1 parameter servers"));
  EXPECT_THAT(statuses[0].status().message(), HasSubstr("with 2 (plan"));
  EXPECT_THAT(statuses[1].status().message(), HasSubstr("not tried again"));
  EXPECT_EQ(AllStatuses(*client).status().code(), absl::StatusCode::kFailedPrecondition);

  std::vector<float> params(parameter_count());
  const absl::Time pull_begin = absl::Now();
  const absl::Status pulled = client->Pull(absl::MakeSpan(params), {}).status();
  EXPECT_LT(absl::Now() - pull_begin, absl::Seconds(10));
  EXPECT_EQ(pulled.code(), absl::StatusCode::kFailedPrecondition) << pulled;
  EXPECT_THAT(pulled.message(), HasSubstr(absl::StrCat("parameter server 0 (", only, ") Pull")));
}

TEST_F(GrpcParameterClientTest, AStopRequestEndsTheRetriesPromptly) {
  const std::string first = cluster_->Start(0);
  const std::string missing = absl::StrCat("127.0.0.1:", FreePort());
  std::atomic<bool> stop{false};
  GrpcParameterClientOptions options;
  options.patience = absl::Seconds(60);
  options.stop = &stop;
  std::unique_ptr<GrpcParameterClient> client = MakeClient({first, missing}, options);
  std::thread stopper([&stop] {
    absl::SleepFor(absl::Milliseconds(300));
    stop = true;
  });
  std::vector<float> params(parameter_count());
  const absl::Time begin = absl::Now();
  const absl::Status pulled = client->Pull(absl::MakeSpan(params), {}).status();
  stopper.join();
  EXPECT_LT(absl::Now() - begin, absl::Seconds(5));
  EXPECT_EQ(pulled.code(), absl::StatusCode::kCancelled) << pulled;
  EXPECT_THAT(pulled.message(), HasSubstr("stopped on request"));
}

TEST_F(GrpcParameterClientTest, ACallMadeAfterTheStopStillReachesEveryServerOnce) {
  // SIGTERM during a step: the step's push is made after the stop and must still land
  // (the worker counts the step as done).
  std::atomic<bool> stop{false};
  GrpcParameterClientOptions options;
  options.stop = &stop;
  std::unique_ptr<GrpcParameterClient> client = MakeClient(cluster_->StartAll(), options);
  std::vector<float> params(parameter_count());
  absl::StatusOr<ModelVersion> version = client->Pull(absl::MakeSpan(params), {});
  ASSERT_TRUE(version.ok()) << version.status();
  stop = true;
  const std::vector<float> gradients = Gradients(parameter_count(), 0);
  PushRequest push;
  push.worker_id = 1;
  push.request_id = 1;
  push.example_count = 8;
  push.gradients = gradients;
  push.computed_from = *version;
  absl::StatusOr<PushResult> pushed = client->Push(push);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  for (int i = 0; i < 2; ++i) EXPECT_EQ(cluster_->core(i)->shard().version(), 1);
}

TEST(IsTransientTest, RetriesWhatAServerRestartingOrShuttingDownAnswers) {
  EXPECT_TRUE(IsTransient(grpc::StatusCode::UNAVAILABLE));
  EXPECT_TRUE(IsTransient(grpc::StatusCode::DEADLINE_EXCEEDED));
  // A parameter server stopping on SIGTERM cancels a push it is serving; the retry
  // reaches it once restarted (seen in cluster_e2e_ps_restart).
  EXPECT_TRUE(IsTransient(grpc::StatusCode::CANCELLED));
  // A server whose memory budget for requests in flight is full refuses new ones.
  EXPECT_TRUE(IsTransient(grpc::StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_FALSE(IsTransient(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_FALSE(IsTransient(grpc::StatusCode::FAILED_PRECONDITION));
  EXPECT_FALSE(IsTransient(grpc::StatusCode::ABORTED));  // dropped by the trainer instead
}

TEST_F(GrpcParameterClientTest, CreateChecksTheAddresses) {
  absl::StatusOr<std::unique_ptr<GrpcParameterClient>> client =
      GrpcParameterClient::Create(*plan_, {"127.0.0.1:1"});
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(client.status().message(), HasSubstr("plan of 2 parameter servers"));
  client = GrpcParameterClient::Create(*plan_, {"127.0.0.1:1", ""});
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mobilenet
