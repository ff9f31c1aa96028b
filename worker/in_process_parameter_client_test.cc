#include "worker/in_process_parameter_client.h"

#include <cmath>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/initializer.h"
#include "parameter_server/core/tiny_layouts_for_test.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

ParameterShardConfig SgdConfig() {
  ParameterShardConfig config;
  config.seed = 3;
  config.optimizer.kind = OptimizerKind::kSgd;
  config.learning_rate.initial_learning_rate = 0.5f;
  config.learning_rate.decay_factor = 1.0f;
  config.learning_rate.examples_per_epoch = 1000;
  config.moving_average_decay = 0.5f;
  return config;
}

// The servers of a plan of the tiny model over `num_servers`, for a cluster of 3 workers.
struct Servers {
  std::unique_ptr<ShardingPlan> plan;
  std::vector<std::unique_ptr<ParameterServerCore>> cores;

  explicit Servers(int num_servers) {
    absl::StatusOr<ShardingPlan> made =
        ShardingPlan::CreateForLayouts(TinyParameters(), TinyState(), num_servers, "tiny");
    EXPECT_TRUE(made.ok()) << made.status();
    plan = std::make_unique<ShardingPlan>(*made);
    for (int i = 0; i < num_servers; ++i) {
      CoreOptions options;
      options.shard_index = i;
      options.num_workers = 3;
      absl::StatusOr<std::unique_ptr<ParameterServerCore>> core =
          ParameterServerCore::Create(*plan, SgdConfig(), options);
      EXPECT_TRUE(core.ok()) << core.status();
      cores.push_back(std::move(*core));
    }
  }
  std::vector<ParameterServerCore*> pointers() const {
    std::vector<ParameterServerCore*> out;
    for (const auto& core : cores) out.push_back(core.get());
    return out;
  }
  std::unique_ptr<InProcessParameterClient> Client(int32_t worker_id = 0) const {
    absl::StatusOr<std::unique_ptr<InProcessParameterClient>> client =
        InProcessParameterClient::Create(*plan, pointers(), worker_id);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }
};

PushRequest MakePush(const ModelVersion& from, absl::Span<const float> gradients,
                     absl::Span<const float> stats, uint64_t request_id, int32_t worker = 0) {
  PushRequest push;
  push.worker_id = worker;
  push.request_id = request_id;
  push.computed_from = from;
  push.example_count = 4;
  push.gradients = gradients;
  push.batch_stats = stats;
  return push;
}

TEST(InProcessParameterClientTest, OneServerPullsAndPushesTheWholeModel) {
  Servers servers(1);
  std::unique_ptr<InProcessParameterClient> client = servers.Client();
  std::vector<float> params(17), state(6), expected(17), expected_state(6);
  InitializeAll(TinyParameters(), 3, expected.data());
  InitializeAll(TinyState(), 3, expected_state.data());
  absl::StatusOr<ModelVersion> version = client->Pull(absl::MakeSpan(params), absl::MakeSpan(state));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(version->shard_versions, std::vector<int64_t>{0});
  EXPECT_EQ(version->shard_incarnations, std::vector<uint64_t>{servers.cores[0]->incarnation()});
  EXPECT_EQ(params, expected);
  EXPECT_EQ(state, expected_state);

  std::vector<float> gradients(17);
  for (int i = 0; i < 17; ++i) gradients[i] = 0.1f * i;
  const std::vector<float> stats = {2, 2, 2, 3, 3, 3};
  absl::StatusOr<PushResult> pushed = client->Push(MakePush(*version, gradients, stats, 1));
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(pushed->version.shard_versions, std::vector<int64_t>{1});
  EXPECT_FLOAT_EQ(pushed->learning_rate, 0.5f);
  ASSERT_TRUE(client->Pull(absl::MakeSpan(params), absl::MakeSpan(state)).ok());
  for (int i = 0; i < 17; ++i) EXPECT_NEAR(params[i], expected[i] - 0.5f * gradients[i], 1e-6);
  // Means 0 -> 0.5 * 0 + 0.5 * 2; variances 1 -> 0.5 * 1 + 0.5 * 3.
  EXPECT_EQ(state, (std::vector<float>{1, 1, 1, 2, 2, 2}));
}

TEST(InProcessParameterClientTest, TwoServersBehaveLikeOne) {
  Servers one(1), two(2);
  std::unique_ptr<InProcessParameterClient> a = one.Client(), b = two.Client();
  std::vector<float> pa(17), pb(17), sa(6), sb(6);
  for (int step = 0; step < 3; ++step) {
    absl::StatusOr<ModelVersion> va = a->Pull(absl::MakeSpan(pa), absl::MakeSpan(sa));
    absl::StatusOr<ModelVersion> vb = b->Pull(absl::MakeSpan(pb), absl::MakeSpan(sb));
    ASSERT_TRUE(va.ok() && vb.ok());
    ASSERT_EQ(pa, pb) << "step " << step;
    ASSERT_EQ(sa, sb) << "step " << step;
    EXPECT_EQ(vb->shard_versions, (std::vector<int64_t>{step, step}));
    std::vector<float> g(17);
    for (int i = 0; i < 17; ++i) g[i] = 0.05f * (i - 8) + 0.1f * step;
    const std::vector<float> stats(6, 0.5f * (step + 1));
    ASSERT_TRUE(a->Push(MakePush(*va, g, stats, step + 1)).ok());
    ASSERT_TRUE(b->Push(MakePush(*vb, g, stats, step + 1)).ok());
  }
  absl::StatusOr<std::vector<ps::v1::StatusResponse>> statuses = AllStatuses(*b);
  ASSERT_TRUE(statuses.ok());
  ASSERT_EQ(statuses->size(), 2u);
  EXPECT_EQ(GlobalStep(*statuses), 3);
  EXPECT_EQ((*statuses)[0].parameter_count() + (*statuses)[1].parameter_count(), 17);
  EXPECT_EQ((*statuses)[1].workers(0).examples(), 12);
}

TEST(InProcessParameterClientTest, CreateChecksTheCoresAgainstThePlan) {
  Servers two(2), other(1);
  EXPECT_THAT(InProcessParameterClient::Create(*two.plan, {two.cores[0].get()}, 0).status().message(),
              HasSubstr("1 parameter server cores for a plan of 2"));
  EXPECT_THAT(InProcessParameterClient::Create(*two.plan, {two.cores[1].get(), two.cores[0].get()}, 0)
                  .status()
                  .message(),
              HasSubstr("core 0 does not serve server 0"));
  EXPECT_FALSE(InProcessParameterClient::Create(*two.plan, {other.cores[0].get(), two.cores[1].get()},
                                                0)
                   .ok());
}

TEST(InProcessParameterClientTest, MalformedPushesReachNoServerAndServerErrorsAreNamed) {
  Servers servers(2);
  std::unique_ptr<InProcessParameterClient> client = servers.Client();
  std::vector<float> params(17);
  absl::StatusOr<ModelVersion> version = client->Pull(absl::MakeSpan(params), {});
  ASSERT_TRUE(version.ok());
  std::vector<float> nan_gradients(17, 0.1f);
  nan_gradients[16] = std::numeric_limits<float>::quiet_NaN();  // fc/biases[1]
  absl::Status refused = client->Push(MakePush(*version, nan_gradients, {}, 1)).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("gradient for fc/biases[1] is nan"));
  const std::vector<float> short_gradients(16, 0.1f);
  EXPECT_THAT(client->Push(MakePush(*version, short_gradients, {}, 2)).status().message(),
              HasSubstr("16 gradient values, expected 17"));
  ModelVersion one_version;
  one_version.shard_versions = {0};
  EXPECT_THAT(client->Push(MakePush(one_version, std::vector<float>(17, 0.1f), {}, 3))
                  .status()
                  .message(),
              HasSubstr("computed from 1 shard versions, expected 2"));
  for (const auto& core : servers.cores) EXPECT_EQ(core->GetStatus().pushes_invalid(), 0);

  // A server's own refusal (a worker id outside the cluster) names it.
  absl::Status stranger =
      client->Push(MakePush(*version, std::vector<float>(17, 0.1f), {}, 4, /*worker=*/7)).status();
  EXPECT_EQ(stranger.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(stranger.message(), HasSubstr("parameter server 0 (in process) Push"));
  EXPECT_THAT(stranger.message(), HasSubstr("worker_id: 7"));
}

TEST(InProcessParameterClientTest, ResentPushIsAppliedOnce) {
  Servers servers(2);
  std::unique_ptr<InProcessParameterClient> client = servers.Client();
  std::vector<float> params(17);
  absl::StatusOr<ModelVersion> version = client->Pull(absl::MakeSpan(params), {});
  ASSERT_TRUE(version.ok());
  const std::vector<float> g(17, 0.2f);
  ASSERT_TRUE(client->Push(MakePush(*version, g, {}, 9)).ok());
  absl::StatusOr<PushResult> again = client->Push(MakePush(*version, g, {}, 9));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->version.shard_versions, (std::vector<int64_t>{1, 1}));
  for (const auto& core : servers.cores) {
    EXPECT_EQ(core->GetStatus().pushes_duplicate(), 1);
    EXPECT_EQ(core->shard().version(), 1);
  }
}

TEST(InProcessParameterClientTest, EvaluationFinishAndProgressReachEveryServer) {
  Servers servers(2);
  std::unique_ptr<InProcessParameterClient> client = servers.Client();
  client->set_progress(321.0, 5);
  std::vector<float> params(17);
  absl::StatusOr<ModelVersion> version = client->Pull(absl::MakeSpan(params), {});
  ASSERT_TRUE(client->Push(MakePush(*version, std::vector<float>(17, 0.1f), {}, 1)).ok());
  EvaluationResult evaluation;
  evaluation.examples = 10;
  evaluation.correct = 7;
  evaluation.loss = 0.5;
  evaluation.global_step = 1;
  ASSERT_TRUE(client->ReportEvaluation(0, evaluation).ok());
  EXPECT_EQ(client->ReportEvaluation(1, evaluation).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(client->Finish(2, false).ok());
  ASSERT_TRUE(client->Finish(0, true).ok());
  for (const absl::StatusOr<ps::v1::StatusResponse>& status : client->GetStatus()) {
    ASSERT_TRUE(status.ok());
    EXPECT_DOUBLE_EQ(status->eval_accuracy(), 0.7);
    EXPECT_TRUE(status->finishing());
    EXPECT_DOUBLE_EQ(status->workers(0).images_per_sec(), 321.0);
    EXPECT_EQ(status->workers(0).steps(), 5);
    EXPECT_TRUE(status->workers(2).finished());
  }
}

TEST(InProcessParameterClientTest, ThreadsShareOneClient) {
  Servers servers(2);
  std::unique_ptr<InProcessParameterClient> client = servers.Client();
  constexpr int kThreads = 4, kPushes = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> params(17);
      const std::vector<float> g(17, 0.01f);
      for (int p = 0; p < kPushes; ++p) {
        absl::StatusOr<ModelVersion> version = client->Pull(absl::MakeSpan(params), {});
        ASSERT_TRUE(version.ok());
        EXPECT_TRUE(client->Push(MakePush(*version, g, {}, t * 1000 + p + 1, t % 3)).ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const auto& core : servers.cores) EXPECT_EQ(core->shard().version(), kThreads * kPushes);
}

// --sync_replicas: two servers of the tiny model for 3 workers aggregating 2 gradients a
// step, plain SGD at 0.5 (a step is w -= 0.5 * mean(g)).
struct SyncServers {
  std::unique_ptr<ShardingPlan> plan;
  std::vector<std::unique_ptr<ParameterServerCore>> cores;
  std::vector<std::unique_ptr<InProcessParameterClient>> clients;  // one per worker

  SyncServers() {
    absl::StatusOr<ShardingPlan> made =
        ShardingPlan::CreateForLayouts(TinyParameters(), TinyState(), 2, "tiny");
    EXPECT_TRUE(made.ok()) << made.status();
    plan = std::make_unique<ShardingPlan>(*made);
    std::vector<ParameterServerCore*> pointers;
    for (int i = 0; i < 2; ++i) {
      CoreOptions options;
      options.shard_index = i;
      options.num_workers = 3;
      options.sync.enabled = true;
      options.sync.replicas_to_aggregate = 2;
      absl::StatusOr<std::unique_ptr<ParameterServerCore>> core =
          ParameterServerCore::Create(*plan, SgdConfig(), options);
      EXPECT_TRUE(core.ok()) << core.status();
      pointers.push_back(core->get());
      cores.push_back(std::move(*core));
    }
    for (int32_t worker = 0; worker < 3; ++worker) {
      absl::StatusOr<std::unique_ptr<InProcessParameterClient>> client =
          InProcessParameterClient::Create(*plan, pointers, worker);
      EXPECT_TRUE(client.ok()) << client.status();
      clients.push_back(std::move(*client));
    }
  }
};

// Exact binary fractions: averages of two are exact.
std::vector<float> SyncGradients(int32_t worker, int step) {
  std::vector<float> g(17);
  for (int i = 0; i < 17; ++i) g[i] = 0.125f * (i - 8) + 0.25f * worker - 0.5f * step;
  return g;
}

TEST(InProcessParameterClientTest, SynchronousStepsAgreeOnEveryServer) {
  SyncServers servers;
  std::vector<float> expected(17);
  InitializeAll(TinyParameters(), 3, expected.data());
  constexpr int kSteps = 4;
  // Gradients counted by the servers before step s: 2 applied per step, and each step's
  // dropped backup, named by the next step's decision (counted, never applied).
  const auto counted_before = [](int64_t s) { return s == 0 ? 0 : 3 * s - 1; };
  for (int step = 0; step < kSteps; ++step) {
    // Every worker pulls step `step`; two of them (rotating) are counted, the third is the
    // backup whose gradients come too late.
    std::vector<std::vector<float>> params(3, std::vector<float>(17));
    std::vector<ModelVersion> versions(3);
    for (int32_t worker = 0; worker < 3; ++worker) {
      absl::StatusOr<ModelVersion> version = servers.clients[worker]->Pull(
          absl::MakeSpan(params[worker]), {}, WeightsKind::kRaw, PullPurpose::kTraining, 0);
      ASSERT_TRUE(version.ok()) << version.status();
      EXPECT_TRUE(version->sync_reached);
      EXPECT_EQ(version->sync_step, step);
      EXPECT_EQ(version->shard_versions,
                (std::vector<int64_t>{counted_before(step), counted_before(step)}));
      for (int i = 0; i < 17; ++i) ASSERT_FLOAT_EQ(params[worker][i], expected[i]) << step;
      versions[worker] = *version;
    }
    const int32_t first = step % 3, second = (step + 1) % 3, backup = (step + 2) % 3;
    const std::vector<float> g1 = SyncGradients(first, step), g2 = SyncGradients(second, step),
                             g3 = SyncGradients(backup, step);
    absl::StatusOr<PushResult> counted =
        servers.clients[first]->Push(MakePush(versions[first], g1, {}, 10 + step, first));
    ASSERT_TRUE(counted.ok()) << counted.status();
    EXPECT_TRUE(counted->sync_pending);
    // Not closed yet: a pull waiting for the next step reads nothing.
    std::vector<float> untouched(17, 7.0f);
    absl::StatusOr<ModelVersion> waiting = servers.clients[first]->Pull(
        absl::MakeSpan(untouched), {}, WeightsKind::kRaw, PullPurpose::kTraining, step + 1);
    ASSERT_TRUE(waiting.ok()) << waiting.status();
    EXPECT_FALSE(waiting->sync_reached);
    EXPECT_EQ(waiting->sync_step, step);
    EXPECT_TRUE(waiting->shard_versions.empty());
    EXPECT_EQ(untouched, std::vector<float>(17, 7.0f));
    ASSERT_TRUE(
        servers.clients[second]->Push(MakePush(versions[second], g2, {}, 10 + step, second)).ok());
    absl::StatusOr<PushResult> late =
        servers.clients[backup]->Push(MakePush(versions[backup], g3, {}, 10 + step, backup));
    EXPECT_EQ(late.status().code(), absl::StatusCode::kAborted) << late.status();
    for (int i = 0; i < 17; ++i) expected[i] -= 0.5f * ((g1[i] + g2[i]) / 2);
  }
  // A last pull relays the last decision to server 1.
  std::vector<float> params(17);
  absl::StatusOr<ModelVersion> last = servers.clients[0]->Pull(
      absl::MakeSpan(params), {}, WeightsKind::kRaw, PullPurpose::kTraining, kSteps);
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->sync_step, kSteps);
  EXPECT_EQ(last->shard_versions,
            (std::vector<int64_t>{counted_before(kSteps), counted_before(kSteps)}));
  for (int i = 0; i < 17; ++i) EXPECT_FLOAT_EQ(params[i], expected[i]) << i;
  for (const auto& core : servers.cores) {
    const ps::v1::StatusResponse status = core->GetStatus();
    EXPECT_EQ(status.sync_steps(), kSteps);
    EXPECT_EQ(status.global_step(), counted_before(kSteps));
    EXPECT_EQ(status.examples_seen(), counted_before(kSteps) * 4);
    EXPECT_EQ(status.sync_steps_incomplete(), 0);
    EXPECT_EQ(status.pushes_applied(), 2 * kSteps);
    int64_t pushes = 0;
    for (const ps::v1::WorkerStatus& worker : status.workers()) pushes += worker.pushes();
    EXPECT_EQ(pushes, counted_before(kSteps));
  }
  EXPECT_EQ(servers.cores[0]->GetStatus().sync_pushes_dropped(), kSteps);
}

TEST(InProcessParameterClientTest, AGradientThatNeverReachedServerZeroIsAppliedNowhere) {
  SyncServers servers;
  std::vector<float> params(17), expected(17);
  InitializeAll(TinyParameters(), 3, expected.data());
  std::vector<ModelVersion> versions;
  for (int32_t worker = 0; worker < 3; ++worker) {
    absl::StatusOr<ModelVersion> version = servers.clients[worker]->Pull(
        absl::MakeSpan(params), {}, WeightsKind::kRaw, PullPurpose::kTraining, 0);
    ASSERT_TRUE(version.ok()) << version.status();
    versions.push_back(*version);
  }
  // Worker 2 dies mid-push: its gradients reach server 1 first, never server 0.
  ParameterServerCore& other = *servers.cores[1];
  PushRequest dying = MakePush(versions[2], std::vector<float>(17, 100.0f), {}, 1, 2);
  ps::v1::PushRequest message = MakePushFields(*servers.plan, 1, dying, 0, 0);
  const std::vector<float> hundreds(other.parameter_count(), 100.0f);
  message.set_gradients(
      std::string(reinterpret_cast<const char*>(hundreds.data()), hundreds.size() * sizeof(float)));
  ps::v1::PushResponse response;
  ASSERT_TRUE(other.Push(Caller::Trusted(), message, response).ok());
  EXPECT_TRUE(response.sync_pending());

  const std::vector<float> g0 = SyncGradients(0, 0), g1 = SyncGradients(1, 0);
  ASSERT_TRUE(servers.clients[0]->Push(MakePush(versions[0], g0, {}, 2, 0)).ok());
  ASSERT_TRUE(servers.clients[1]->Push(MakePush(versions[1], g1, {}, 2, 1)).ok());
  absl::StatusOr<ModelVersion> after = servers.clients[2]->Pull(
      absl::MakeSpan(params), {}, WeightsKind::kRaw, PullPurpose::kTraining, 1);
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_TRUE(after->sync_reached);
  EXPECT_EQ(after->shard_versions, (std::vector<int64_t>{2, 2}));
  for (int i = 0; i < 17; ++i) {
    EXPECT_FLOAT_EQ(params[i], expected[i] - 0.5f * ((g0[i] + g1[i]) / 2)) << i;
  }
  for (const auto& core : servers.cores) {
    const ps::v1::StatusResponse status = core->GetStatus();
    EXPECT_EQ(status.sync_steps(), 1);
    EXPECT_EQ(status.workers(2).pushes(), 0);
    EXPECT_EQ(status.sync_steps_incomplete(), 0);
  }
}

TEST(InProcessParameterClientTest, ASynchronousPushGoesToServerZeroOnlyOnceTheOthersAccepted) {
  SyncServers servers;
  std::vector<float> params(17);
  absl::StatusOr<ModelVersion> version = servers.clients[0]->Pull(
      absl::MakeSpan(params), {}, WeightsKind::kRaw, PullPurpose::kTraining, 0);
  ASSERT_TRUE(version.ok()) << version.status();
  // Server 1 refuses (weights of an earlier run of it): server 0 is never asked.
  ModelVersion stale = *version;
  stale.shard_incarnations[1] += 1;
  absl::StatusOr<PushResult> pushed =
      servers.clients[0]->Push(MakePush(stale, SyncGradients(0, 0), {}, 1, 0));
  EXPECT_FALSE(pushed.ok());
  EXPECT_EQ(servers.cores[0]->GetStatus().sync_gradients_pending(), 0);
  // Accepted by server 1, then counted by server 0.
  pushed = servers.clients[0]->Push(MakePush(*version, SyncGradients(0, 0), {}, 2, 0));
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(servers.cores[0]->GetStatus().sync_gradients_pending(), 1);
}
}  // namespace
}  // namespace mobilenet
