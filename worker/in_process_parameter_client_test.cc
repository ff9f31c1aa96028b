#include "worker/in_process_parameter_client.h"

#include <cmath>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/initializer.h"
#include "parameter_server/tiny_layouts_for_test.h"

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

class InProcessParameterClientTest : public ::testing::Test {
 protected:
  std::unique_ptr<ParameterShard> MakeShard(const ShardSpec& spec) {
    absl::StatusOr<std::unique_ptr<ParameterShard>> shard =
        ParameterShard::Create(params_, state_, spec, SgdConfig());
    EXPECT_TRUE(shard.ok()) << shard.status();
    return shard.ok() ? std::move(*shard) : nullptr;
  }

  // Two shards with interleaved, out-of-order slices (exercising the gather/scatter path)
  // and a client over them.
  void MakeTwoShards() {
    ShardSpec first;
    first.parameters = {{"fc/weights", 0, 6}, {"a/weights", 0, 2}};
    first.state = {{"a/BatchNorm/moving_variance", 0, 3}};
    ShardSpec second;
    second.parameters = {{"a/weights", 2, 6}, {"a/BatchNorm/gamma", 0, 3}, {"fc/biases", 0, 2}};
    second.state = {{"a/BatchNorm/moving_mean", 0, 3}};
    shards_.push_back(MakeShard(first));
    shards_.push_back(MakeShard(second));
    absl::StatusOr<std::unique_ptr<InProcessParameterClient>> client =
        InProcessParameterClient::Create(params_, state_, {shards_[0].get(), shards_[1].get()});
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
  }

  ParameterLayout params_ = TinyParameters();
  ParameterLayout state_ = TinyState();
  std::vector<std::unique_ptr<ParameterShard>> shards_;
  std::unique_ptr<InProcessParameterClient> client_;
};

TEST_F(InProcessParameterClientTest, SingleShardPullsAndPushesTheWholeModel) {
  shards_.push_back(MakeShard(WholeModelShardSpec(params_, state_)));
  absl::StatusOr<std::unique_ptr<InProcessParameterClient>> client =
      InProcessParameterClient::Create(params_, state_, {shards_[0].get()});
  ASSERT_TRUE(client.ok()) << client.status();

  std::vector<float> weights(17), state(6);
  absl::StatusOr<ModelVersion> version =
      (*client)->Pull(absl::MakeSpan(weights), absl::MakeSpan(state));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(version->shard_versions, (std::vector<int64_t>{0}));
  std::vector<float> expected(17), expected_state(6);
  InitializeAll(params_, 3, expected.data());
  InitializeAll(state_, 3, expected_state.data());
  EXPECT_EQ(weights, expected);
  EXPECT_EQ(state, expected_state);

  const std::vector<float> g(17, 1.0f);
  PushRequest push;
  push.worker_id = 1;
  push.request_id = 1;
  push.computed_from = *version;
  push.example_count = 8;
  push.gradients = g;
  absl::StatusOr<PushResult> result = (*client)->Push(push);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->version.shard_versions, (std::vector<int64_t>{1}));
  EXPECT_EQ(result->version.global_step(), 1);
  EXPECT_EQ(result->max_staleness, 0);
  EXPECT_FLOAT_EQ(result->learning_rate, 0.5f);

  ASSERT_TRUE((*client)->Pull(absl::MakeSpan(weights), {}).ok());
  for (int i = 0; i < 17; ++i) EXPECT_FLOAT_EQ(weights[i], expected[i] - 0.5f);

  absl::StatusOr<ParameterServerStatus> status = (*client)->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(status->shards.size(), 1u);
  EXPECT_EQ(status->global_step(), 1);
  EXPECT_EQ(status->examples_seen(), 8);
}

TEST_F(InProcessParameterClientTest, InterleavedShardsBehaveLikeOneWholeModelShard) {
  MakeTwoShards();
  std::unique_ptr<ParameterShard> reference = MakeShard(WholeModelShardSpec(params_, state_));

  std::vector<float> weights(17), state(6), expected(17), expected_state(6);
  absl::StatusOr<ModelVersion> version =
      client_->Pull(absl::MakeSpan(weights), absl::MakeSpan(state));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(version->shard_versions, (std::vector<int64_t>{0, 0}));
  ASSERT_TRUE(reference->Pull(absl::MakeSpan(expected), absl::MakeSpan(expected_state)).ok());
  EXPECT_EQ(weights, expected);
  EXPECT_EQ(state, expected_state);

  std::vector<float> g(17), stats(6);
  for (int i = 0; i < 17; ++i) g[i] = 0.25f * i;
  for (int i = 0; i < 6; ++i) stats[i] = 2.0f * i;
  for (int step = 0; step < 2; ++step) {
    PushRequest push;
    push.request_id = step;
    push.computed_from = *version;
    push.example_count = 4;
    push.gradients = g;
    push.batch_stats = stats;
    absl::StatusOr<PushResult> result = client_->Push(push);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->version.shard_versions, (std::vector<int64_t>{step + 1, step + 1}));
    EXPECT_EQ(result->max_staleness, step);

    ShardPushRequest reference_push;
    reference_push.request_id = step;
    reference_push.computed_from_version = 0;
    reference_push.example_count = 4;
    reference_push.gradients = g;
    reference_push.batch_stats = stats;
    ASSERT_TRUE(reference->ApplyGradients(reference_push).ok());
  }
  ASSERT_TRUE(client_->Pull(absl::MakeSpan(weights), absl::MakeSpan(state)).ok());
  ASSERT_TRUE(reference->Pull(absl::MakeSpan(expected), absl::MakeSpan(expected_state)).ok());
  EXPECT_EQ(weights, expected);
  EXPECT_EQ(state, expected_state);

  absl::StatusOr<ParameterServerStatus> status = client_->GetStatus();
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(status->shards.size(), 2u);
  EXPECT_EQ(status->shards[0].parameter_count, 8);
  EXPECT_EQ(status->shards[1].parameter_count, 9);
  EXPECT_EQ(status->global_step(), 2);
}

TEST_F(InProcessParameterClientTest, CreateRequiresAnExactCover) {
  std::unique_ptr<ParameterShard> whole = MakeShard(WholeModelShardSpec(params_, state_));
  ShardSpec part;
  part.parameters = {{"a/weights", 2, 4}};
  std::unique_ptr<ParameterShard> overlapping = MakeShard(part);

  absl::StatusOr<std::unique_ptr<InProcessParameterClient>> client =
      InProcessParameterClient::Create(params_, state_, {whole.get(), overlapping.get()});
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(client.status().message(), HasSubstr("parameter elements [2, 4)"));
  EXPECT_THAT(client.status().message(), HasSubstr("more than one"));

  client = InProcessParameterClient::Create(params_, state_, {overlapping.get()});
  ASSERT_FALSE(client.ok());
  EXPECT_THAT(client.status().message(), HasSubstr("parameter elements [0, 2) are held by no"));

  ShardSpec no_state = WholeModelShardSpec(params_, state_);
  no_state.state.pop_back();
  std::unique_ptr<ParameterShard> stateless = MakeShard(no_state);
  client = InProcessParameterClient::Create(params_, state_, {stateless.get()});
  ASSERT_FALSE(client.ok());
  EXPECT_THAT(client.status().message(), HasSubstr("state elements [3, 6) are held by no"));

  EXPECT_FALSE(InProcessParameterClient::Create(params_, state_, {}).ok());
}

TEST_F(InProcessParameterClientTest, RejectsMalformedRequestsAndPrefixesShardErrors) {
  MakeTwoShards();
  std::vector<float> weights(16), state(6);
  absl::StatusOr<ModelVersion> version =
      client_->Pull(absl::MakeSpan(weights), absl::MakeSpan(state));
  EXPECT_EQ(version.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(version.status().message(), HasSubstr("16 floats, expected 17"));

  const std::vector<float> g(17, 1.0f);
  PushRequest push;
  push.computed_from.shard_versions = {0};
  push.example_count = 1;
  push.gradients = g;
  absl::StatusOr<PushResult> result = client_->Push(push);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("1 shard versions, expected 2"));

  push.computed_from.shard_versions = {0, 0};
  push.gradients = absl::MakeConstSpan(g).subspan(1);
  EXPECT_THAT(client_->Push(push).status().message(), HasSubstr("16 gradient values"));

  // A NaN in the second shard's range is refused before any shard applies its part.
  std::vector<float> bad = g;
  bad[16] = std::nanf("");  // fc/biases[1], held by shard 1
  push.gradients = bad;
  result = client_->Push(push);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("gradient for fc/biases[1] is nan"));
  std::vector<float> stats(6, 1.0f);
  stats[4] = std::numeric_limits<float>::infinity();
  push.gradients = g;
  push.batch_stats = stats;
  result = client_->Push(push);
  EXPECT_THAT(result.status().message(),
              HasSubstr("batch statistic for a/BatchNorm/moving_variance[1] is inf"));
  EXPECT_EQ(shards_[0]->status().version, 0);
  EXPECT_EQ(shards_[1]->status().version, 0);

  // A shard's own error comes back prefixed with its index.
  push.batch_stats = {};
  push.computed_from.shard_versions = {0, 5};
  result = client_->Push(push);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("shard 1: "));
  EXPECT_THAT(result.status().message(), HasSubstr("computed from version 5"));
}

TEST_F(InProcessParameterClientTest, ResentPushIsAppliedOnce) {
  MakeTwoShards();
  std::vector<float> weights(17), before(17);
  absl::StatusOr<ModelVersion> version = client_->Pull(absl::MakeSpan(before), {});
  ASSERT_TRUE(version.ok());
  const std::vector<float> g(17, 1.0f);
  PushRequest push;
  push.worker_id = 2;
  push.request_id = 9;
  push.computed_from = *version;
  push.example_count = 1;
  push.gradients = g;
  ASSERT_TRUE(client_->Push(push).ok());
  absl::StatusOr<PushResult> again = client_->Push(push);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->version.shard_versions, (std::vector<int64_t>{1, 1}));
  ASSERT_TRUE(client_->Pull(absl::MakeSpan(weights), {}).ok());
  for (int i = 0; i < 17; ++i) EXPECT_FLOAT_EQ(weights[i], before[i] - 0.5f);
}

TEST_F(InProcessParameterClientTest, ThreadsShareOneClient) {
  MakeTwoShards();
  constexpr int kThreads = 4, kSteps = 25;
  std::vector<float> before(17);
  ASSERT_TRUE(client_->Pull(absl::MakeSpan(before), {}).ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      std::vector<float> weights(17), state(6);
      const std::vector<float> g(17, 0.125f);
      for (int step = 0; step < kSteps; ++step) {
        absl::StatusOr<ModelVersion> version =
            client_->Pull(absl::MakeSpan(weights), absl::MakeSpan(state));
        ASSERT_TRUE(version.ok()) << version.status();
        PushRequest push;
        push.worker_id = t;
        push.request_id = step;
        push.computed_from = *version;
        push.example_count = 1;
        push.gradients = g;
        absl::StatusOr<PushResult> result = client_->Push(push);
        EXPECT_TRUE(result.ok()) << result.status();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::vector<float> after(17);
  absl::StatusOr<ModelVersion> version = client_->Pull(absl::MakeSpan(after), {});
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(version->shard_versions, (std::vector<int64_t>{kThreads * kSteps, kThreads * kSteps}));
  // 100 SGD steps of 0.5 * 0.125.
  for (int i = 0; i < 17; ++i) EXPECT_NEAR(after[i], before[i] - 100 * 0.0625f, 1e-4);
}

}  // namespace
}  // namespace mobilenet
