#include "parameter_server/parameter_shard.h"

#include <cmath>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/initializer.h"
#include "model/mobilenet_v1.h"
#include "parameter_server/tiny_layouts_for_test.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

// Constant learning rate 0.1 unless a test changes it.
ParameterShardConfig TinyConfig(OptimizerKind kind) {
  ParameterShardConfig config;
  config.seed = 7;
  config.optimizer.kind = kind;
  config.learning_rate.initial_learning_rate = 0.1f;
  config.learning_rate.decay_factor = 1.0f;
  config.learning_rate.examples_per_epoch = 100;
  return config;
}

class ParameterShardTest : public ::testing::Test {
 protected:
  std::unique_ptr<ParameterShard> MakeShard(const ParameterShardConfig& config) {
    return MakeShard(WholeModelShardSpec(params_, state_), config);
  }
  std::unique_ptr<ParameterShard> MakeShard(const ShardSpec& spec,
                                            const ParameterShardConfig& config) {
    absl::StatusOr<std::unique_ptr<ParameterShard>> shard =
        ParameterShard::Create(params_, state_, spec, config);
    EXPECT_TRUE(shard.ok()) << shard.status();
    return shard.ok() ? std::move(*shard) : nullptr;
  }

  struct Pulled {
    int64_t version = -1;
    std::vector<float> weights, state;
  };
  static Pulled PullAll(const ParameterShard& shard) {
    Pulled pulled;
    pulled.weights.resize(shard.parameter_count());
    pulled.state.resize(shard.state_count());
    absl::StatusOr<int64_t> version =
        shard.Pull(absl::MakeSpan(pulled.weights), absl::MakeSpan(pulled.state));
    EXPECT_TRUE(version.ok()) << version.status();
    pulled.version = version.value_or(-1);
    return pulled;
  }

  static ShardPushRequest Push(absl::Span<const float> gradients, int64_t from_version,
                               uint64_t request_id, int32_t worker_id = 0) {
    ShardPushRequest push;
    push.worker_id = worker_id;
    push.request_id = request_id;
    push.computed_from_version = from_version;
    push.example_count = 4;
    push.gradients = gradients;
    return push;
  }

  ParameterLayout params_ = TinyParameters();
  ParameterLayout state_ = TinyState();
};

TEST_F(ParameterShardTest, InitialWeightsEqualWholeModelInitialization) {
  std::unique_ptr<ParameterShard> shard = MakeShard(TinyConfig(OptimizerKind::kRmsProp));
  ASSERT_NE(shard, nullptr);
  EXPECT_EQ(shard->parameter_count(), 17);
  EXPECT_EQ(shard->state_count(), 6);
  std::vector<float> expected_weights(params_.total_size()), expected_state(state_.total_size());
  InitializeAll(params_, 7, expected_weights.data());
  InitializeAll(state_, 7, expected_state.data());
  Pulled pulled = PullAll(*shard);
  EXPECT_EQ(pulled.version, 0);
  EXPECT_EQ(pulled.weights, expected_weights);
  EXPECT_EQ(pulled.state, expected_state);
}

TEST_F(ParameterShardTest, SlicesOfTheRealModelEqualTheSameRangesOfWholeModelInit) {
  MobileNetConfig model_config;
  model_config.alpha = 0.25f;
  model_config.resolution = 32;
  model_config.num_classes = 10;
  absl::StatusOr<Architecture> arch = BuildArchitecture(model_config);
  ASSERT_TRUE(arch.ok()) << arch.status();
  const ParameterLayout params = BuildParameterLayout(*arch);
  const ParameterLayout state = BuildStateLayout(*arch);
  std::vector<float> whole(params.total_size()), whole_state(state.total_size());
  InitializeAll(params, 42, whole.data());
  InitializeAll(state, 42, whole_state.data());

  const std::string pointwise = "MobilenetV1/Conv2d_3_pointwise/weights";
  const std::string classifier = "MobilenetV1/Logits/Conv2d_1c_1x1/weights";
  const std::string variance = "MobilenetV1/Conv2d_5_depthwise/BatchNorm/moving_variance";
  ShardSpec spec;
  spec.parameters = {{classifier, 100, 300}, {pointwise, 5, 77}};
  spec.state = {{variance, 1, 4}};
  ParameterShardConfig config = TinyConfig(OptimizerKind::kRmsProp);
  config.seed = 42;
  absl::StatusOr<std::unique_ptr<ParameterShard>> shard =
      ParameterShard::Create(params, state, spec, config);
  ASSERT_TRUE(shard.ok()) << shard.status();
  Pulled pulled = PullAll(**shard);
  ASSERT_EQ(pulled.weights.size(), 200u + 72u);
  const int64_t classifier_offset = (*params.Find(classifier))->offset;
  const int64_t pointwise_offset = (*params.Find(pointwise))->offset;
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(pulled.weights[i], whole[classifier_offset + 100 + i]) << i;
  }
  for (int i = 0; i < 72; ++i) {
    ASSERT_EQ(pulled.weights[200 + i], whole[pointwise_offset + 5 + i]) << i;
  }
  const int64_t variance_offset = (*state.Find(variance))->offset;
  ASSERT_EQ(pulled.state.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(pulled.state[i], whole_state[variance_offset + 1 + i]);

  // The whole-model spec pulls exactly the layouts' flat buffers.
  absl::StatusOr<std::unique_ptr<ParameterShard>> whole_shard =
      ParameterShard::Create(params, state, WholeModelShardSpec(params, state), config);
  ASSERT_TRUE(whole_shard.ok()) << whole_shard.status();
  Pulled all = PullAll(**whole_shard);
  EXPECT_EQ(all.weights, whole);
  EXPECT_EQ(all.state, whole_state);
}

TEST_F(ParameterShardTest, CreateRejectsBadSpecsAndConfigs) {
  const ParameterShardConfig config = TinyConfig(OptimizerKind::kSgd);
  struct Case {
    ShardSpec spec;
    absl::StatusCode code;
    const char* message;
  };
  const std::vector<Case> cases = {
      {{{{"nope", 0, 1}}, {}}, absl::StatusCode::kNotFound, "nope"},
      {{{{"a/weights", 0, 7}}, {}}, absl::StatusCode::kInvalidArgument, "within [0, 6)"},
      {{{{"a/weights", 3, 3}}, {}}, absl::StatusCode::kInvalidArgument, "non-empty"},
      {{{{"a/weights", 0, 4}, {"a/weights", 3, 6}}, {}},
       absl::StatusCode::kInvalidArgument,
       "overlap"},
      {{{}, {{"a/BatchNorm/moving_mean", 0, 3}}},
       absl::StatusCode::kInvalidArgument,
       "no parameter slices"},
      {{{{"a/weights", 0, 6}}, {{"fc/biases", 0, 2}}}, absl::StatusCode::kNotFound, "fc/biases"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::unique_ptr<ParameterShard>> shard =
        ParameterShard::Create(params_, state_, c.spec, config);
    ASSERT_FALSE(shard.ok()) << c.message;
    EXPECT_EQ(shard.status().code(), c.code) << shard.status();
    EXPECT_THAT(shard.status().message(), HasSubstr(c.message));
  }
  // A moving statistic passed among the parameters (its name exists only in the state
  // layout, so pass the state layout as both).
  absl::StatusOr<std::unique_ptr<ParameterShard>> mixed =
      ParameterShard::Create(state_, state_, {{{"a/BatchNorm/moving_mean", 0, 3}}, {}}, config);
  ASSERT_FALSE(mixed.ok());
  EXPECT_THAT(mixed.status().message(), HasSubstr("expected trainable tensor"));

  ParameterShardConfig bad = config;
  bad.moving_average_decay = 1.0f;
  EXPECT_THAT(ParameterShard::Create(params_, state_, WholeModelShardSpec(params_, state_), bad)
                  .status()
                  .message(),
              HasSubstr("moving_average_decay"));
  bad = config;
  bad.learning_rate.examples_per_epoch = 0;
  EXPECT_THAT(ParameterShard::Create(params_, state_, WholeModelShardSpec(params_, state_), bad)
                  .status()
                  .message(),
              HasSubstr("examples per epoch"));
  bad = TinyConfig(OptimizerKind::kRmsProp);
  bad.optimizer.epsilon = -1.0f;
  EXPECT_THAT(ParameterShard::Create(params_, state_, WholeModelShardSpec(params_, state_), bad)
                  .status()
                  .message(),
              HasSubstr("epsilon"));
}

TEST_F(ParameterShardTest, ApplyMatchesTheRmsPropFormula) {
  std::unique_ptr<ParameterShard> shard = MakeShard(TinyConfig(OptimizerKind::kRmsProp));
  ASSERT_NE(shard, nullptr);
  std::vector<float> w = PullAll(*shard).weights;
  std::vector<float> ms(17, 1.0f), mom(17, 0.0f);
  for (int step = 0; step < 3; ++step) {
    std::vector<float> g(17);
    for (int i = 0; i < 17; ++i) g[i] = 0.1f * (i - 8) + 0.05f * step;
    absl::StatusOr<ShardPushResult> result = shard->ApplyGradients(Push(g, step, step));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->version, step + 1);
    EXPECT_EQ(result->staleness, 0);
    EXPECT_FLOAT_EQ(result->learning_rate, 0.1f);
    // ms = 0.9 ms + 0.1 g^2;  mom = 0.9 mom + lr g / sqrt(ms + 1);  w -= mom.
    for (int i = 0; i < 17; ++i) {
      ms[i] = 0.9 * ms[i] + 0.1 * g[i] * g[i];
      mom[i] = 0.9 * mom[i] + 0.1 * g[i] / std::sqrt(ms[i] + 1.0);
      w[i] -= mom[i];
    }
    Pulled pulled = PullAll(*shard);
    EXPECT_EQ(pulled.version, step + 1);
    for (int i = 0; i < 17; ++i) EXPECT_NEAR(pulled.weights[i], w[i], 1e-6) << i;
  }
}

TEST_F(ParameterShardTest, ConcatenatedBuffersFollowSpecOrderAcrossPartialSlices) {
  ShardSpec spec;
  spec.parameters = {{"fc/weights", 2, 5}, {"a/weights", 0, 3}};
  spec.state = {{"a/BatchNorm/moving_variance", 1, 3}};
  std::unique_ptr<ParameterShard> shard = MakeShard(spec, TinyConfig(OptimizerKind::kSgd));
  ASSERT_NE(shard, nullptr);
  EXPECT_EQ(shard->parameter_count(), 6);
  EXPECT_EQ(shard->state_count(), 2);
  Pulled before = PullAll(*shard);
  const std::vector<float> g = {1, 2, 3, 4, 5, 6};
  const std::vector<float> batch_stats = {3.0f, 5.0f};
  ShardPushRequest push = Push(g, 0, 1);
  push.batch_stats = batch_stats;
  ASSERT_TRUE(shard->ApplyGradients(push).ok());
  Pulled after = PullAll(*shard);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(after.weights[i], before.weights[i] - 0.1f * g[i], 1e-6);
  // Moving variances start at 1: 0.99 * 1 + 0.01 * b.
  EXPECT_FLOAT_EQ(after.state[0], 0.99f + 0.03f);
  EXPECT_FLOAT_EQ(after.state[1], 0.99f + 0.05f);
}

TEST_F(ParameterShardTest, MovingStatisticsFollowTheConfiguredDecay) {
  ParameterShardConfig config = TinyConfig(OptimizerKind::kSgd);
  config.moving_average_decay = 0.5f;
  std::unique_ptr<ParameterShard> shard = MakeShard(config);
  ASSERT_NE(shard, nullptr);
  const std::vector<float> g(17, 0.0f);
  // Means start at 0, variances at 1; batch means 2, batch variances 3.
  const std::vector<float> batch_stats = {2, 2, 2, 3, 3, 3};
  ShardPushRequest push = Push(g, 0, 1);
  push.batch_stats = batch_stats;
  ASSERT_TRUE(shard->ApplyGradients(push).ok());
  // mean 0.5*0 + 0.5*2 = 1, variance 0.5*1 + 0.5*3 = 2.
  EXPECT_EQ(PullAll(*shard).state, (std::vector<float>{1, 1, 1, 2, 2, 2}));
  push = Push(g, 1, 2);
  push.batch_stats = batch_stats;
  ASSERT_TRUE(shard->ApplyGradients(push).ok());
  // mean 0.5*1 + 1 = 1.5, variance 0.5*2 + 1.5 = 2.5.
  EXPECT_EQ(PullAll(*shard).state, (std::vector<float>{1.5, 1.5, 1.5, 2.5, 2.5, 2.5}));
  // A push without statistics leaves them alone.
  ASSERT_TRUE(shard->ApplyGradients(Push(g, 2, 3)).ok());
  EXPECT_EQ(PullAll(*shard).state, (std::vector<float>{1.5, 1.5, 1.5, 2.5, 2.5, 2.5}));
}

TEST_F(ParameterShardTest, VersionExamplesAndScheduleAdvanceWithPushes) {
  ParameterShardConfig config = TinyConfig(OptimizerKind::kSgd);
  config.learning_rate.decay_factor = 0.5f;
  config.learning_rate.epochs_per_decay = 1.0f;
  config.learning_rate.examples_per_epoch = 8;  // halves every 8 examples
  std::unique_ptr<ParameterShard> shard = MakeShard(config);
  ASSERT_NE(shard, nullptr);
  const std::vector<float> g(17, 1.0f);
  const float expected_rates[] = {0.1f, 0.1f, 0.05f, 0.05f, 0.025f};  // at 0, 4, 8, 12, 16
  for (int step = 0; step < 5; ++step) {
    absl::StatusOr<ShardPushResult> result = shard->ApplyGradients(Push(g, step, step));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->version, step + 1);
    EXPECT_FLOAT_EQ(result->learning_rate, expected_rates[step]) << "step " << step;
  }
  ShardStatus status = shard->status();
  EXPECT_EQ(status.version, 5);
  EXPECT_EQ(status.examples_seen, 20);
  EXPECT_FLOAT_EQ(status.learning_rate, 0.025f);  // floor(20 / 8) = 2 decays
  EXPECT_EQ(status.pushes_applied, 5);
  EXPECT_EQ(status.parameter_count, 17);
}

TEST_F(ParameterShardTest, ApplyPolicyCountsStalenessWithoutChangingTheRate) {
  std::unique_ptr<ParameterShard> shard = MakeShard(TinyConfig(OptimizerKind::kSgd));
  ASSERT_NE(shard, nullptr);
  const std::vector<float> g(17, 1.0f);
  // Eight pushes all computed from version 0: staleness 0..7.
  for (int i = 0; i < 8; ++i) {
    absl::StatusOr<ShardPushResult> result = shard->ApplyGradients(Push(g, 0, i));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->staleness, i);
    EXPECT_FLOAT_EQ(result->learning_rate, 0.1f);
  }
  ShardStatus status = shard->status();
  EXPECT_EQ(status.staleness_p50, 3);  // rank 4 of 0..7
  EXPECT_EQ(status.staleness_p90, 7);  // rank ceil(7.2) = 8
  EXPECT_EQ(status.staleness_max, 7);
  EXPECT_DOUBLE_EQ(status.staleness_mean, 3.5);
}

TEST_F(ParameterShardTest, ScalePolicyDividesTheRateByStaleness) {
  ParameterShardConfig config = TinyConfig(OptimizerKind::kSgd);
  config.staleness_policy = StalenessPolicy::kScaleLearningRate;
  std::unique_ptr<ParameterShard> shard = MakeShard(config);
  ASSERT_NE(shard, nullptr);
  const std::vector<float> g(17, 1.0f);
  const std::vector<float> w0 = PullAll(*shard).weights;
  // Four pushes computed from version 0: staleness 0, 1, 2, 3 -> rates 0.1 / max(1, s).
  const float expected_rates[] = {0.1f, 0.1f, 0.05f, 0.1f / 3};
  float total_rate = 0;
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<ShardPushResult> result = shard->ApplyGradients(Push(g, 0, i));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->staleness, i);
    EXPECT_FLOAT_EQ(result->learning_rate, expected_rates[i]);
    total_rate += expected_rates[i];
  }
  // SGD with g = 1: every weight moved by the sum of the rates.
  const std::vector<float> w = PullAll(*shard).weights;
  for (int i = 0; i < 17; ++i) EXPECT_NEAR(w[i], w0[i] - total_rate, 1e-6);
}

TEST_F(ParameterShardTest, RejectPolicyRefusesPushesStalerThanTheBound) {
  ParameterShardConfig config = TinyConfig(OptimizerKind::kSgd);
  config.staleness_policy = StalenessPolicy::kReject;
  config.max_staleness = 1;
  std::unique_ptr<ParameterShard> shard = MakeShard(config);
  ASSERT_NE(shard, nullptr);
  const std::vector<float> g(17, 1.0f);
  ASSERT_TRUE(shard->ApplyGradients(Push(g, 0, 1)).ok());  // staleness 0
  ASSERT_TRUE(shard->ApplyGradients(Push(g, 0, 2)).ok());  // staleness 1
  const Pulled before = PullAll(*shard);
  absl::StatusOr<ShardPushResult> rejected = shard->ApplyGradients(Push(g, 0, 3));
  ASSERT_FALSE(rejected.ok());
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(rejected.status().message(), HasSubstr("2 versions stale"));
  EXPECT_THAT(rejected.status().message(), HasSubstr("max_staleness 1"));
  const Pulled after = PullAll(*shard);
  EXPECT_EQ(after.version, 2);
  EXPECT_EQ(after.weights, before.weights);
  // A fresh push still goes through.
  ASSERT_TRUE(shard->ApplyGradients(Push(g, 2, 4)).ok());
  ShardStatus status = shard->status();
  EXPECT_EQ(status.pushes_rejected_stale, 1);
  EXPECT_EQ(status.pushes_applied, 3);
  EXPECT_EQ(status.examples_seen, 12);
}

TEST_F(ParameterShardTest, RetriedPushIsAppliedExactlyOnce) {
  std::unique_ptr<ParameterShard> shard = MakeShard(TinyConfig(OptimizerKind::kRmsProp));
  ASSERT_NE(shard, nullptr);
  const std::vector<float> g(17, 0.5f);
  absl::StatusOr<ShardPushResult> first = shard->ApplyGradients(Push(g, 0, 77, /*worker=*/3));
  ASSERT_TRUE(first.ok()) << first.status();
  const Pulled once = PullAll(*shard);
  absl::StatusOr<ShardPushResult> retry = shard->ApplyGradients(Push(g, 0, 77, 3));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->version, first->version);
  EXPECT_EQ(retry->staleness, first->staleness);
  EXPECT_EQ(retry->learning_rate, first->learning_rate);
  const Pulled after_retry = PullAll(*shard);
  EXPECT_EQ(after_retry.version, 1);
  EXPECT_EQ(after_retry.weights, once.weights);
  // The same request id from another worker is a different push.
  absl::StatusOr<ShardPushResult> other = shard->ApplyGradients(Push(g, 1, 77, 4));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->version, 2);
  ShardStatus status = shard->status();
  EXPECT_EQ(status.pushes_duplicate, 1);
  EXPECT_EQ(status.pushes_applied, 2);
  EXPECT_EQ(status.examples_seen, 8);
}

TEST_F(ParameterShardTest, OnlyTheLastRequestsPerWorkerAreRemembered) {
  ParameterShardConfig config = TinyConfig(OptimizerKind::kSgd);
  config.remembered_requests_per_worker = 2;
  std::unique_ptr<ParameterShard> shard = MakeShard(config);
  ASSERT_NE(shard, nullptr);
  const std::vector<float> g(17, 1.0f);
  for (uint64_t id = 1; id <= 3; ++id) ASSERT_TRUE(shard->ApplyGradients(Push(g, 0, id)).ok());
  // Request 3 and 2 are remembered, 1 was forgotten and counts as new.
  EXPECT_EQ(shard->ApplyGradients(Push(g, 0, 3))->version, 3);
  EXPECT_EQ(shard->ApplyGradients(Push(g, 0, 2))->version, 2);
  EXPECT_EQ(shard->ApplyGradients(Push(g, 0, 1))->version, 4);
}

TEST_F(ParameterShardTest, MalformedPushesAreRejectedAndChangeNothing) {
  std::unique_ptr<ParameterShard> shard = MakeShard(TinyConfig(OptimizerKind::kRmsProp));
  ASSERT_NE(shard, nullptr);
  const std::vector<float> good(17, 0.5f);
  ASSERT_TRUE(shard->ApplyGradients(Push(good, 0, 1)).ok());
  const Pulled before = PullAll(*shard);
  const ShardState state_before = shard->ExportState();

  const std::vector<float> short_gradients(16, 0.5f);
  std::vector<float> nan_gradients = good;
  nan_gradients[10] = std::nanf("");  // fc/weights element 1
  const std::vector<float> stats(6, 1.0f);
  std::vector<float> inf_stats = stats;
  inf_stats[4] = std::numeric_limits<float>::infinity();  // moving_variance element 1
  const std::vector<float> short_stats(5, 1.0f);

  struct Case {
    ShardPushRequest push;
    const char* message;
  };
  std::vector<Case> cases;
  cases.push_back({Push(short_gradients, 1, 10), "16 gradient values, expected 17"});
  cases.push_back({Push(nan_gradients, 1, 11), "gradient for fc/weights[1] is nan"});
  cases.push_back({Push(good, 1, 12), "batch statistic for a/BatchNorm/moving_variance[1] is inf"});
  cases.back().push.batch_stats = inf_stats;
  cases.push_back({Push(good, 1, 13), "5 batch statistics, expected 6 or none"});
  cases.back().push.batch_stats = short_stats;
  cases.push_back({Push(good, 1, 14), "example count 0"});
  cases.back().push.example_count = 0;
  cases.push_back({Push(good, -1, 15), "computed from version -1"});
  cases.push_back(
      {Push(good, 5, 16), "computed from version 5, but the shard is only at version 1"});
  for (const Case& c : cases) {
    absl::StatusOr<ShardPushResult> result = shard->ApplyGradients(c.push);
    ASSERT_FALSE(result.ok()) << c.message;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
    EXPECT_THAT(result.status().message(), HasSubstr(c.message));
  }
  const Pulled after = PullAll(*shard);
  EXPECT_EQ(after.version, before.version);
  EXPECT_EQ(after.weights, before.weights);
  EXPECT_EQ(after.state, before.state);
  const ShardState state_after = shard->ExportState();
  EXPECT_EQ(state_after.examples_seen, state_before.examples_seen);
  ASSERT_EQ(state_after.tensors.size(), state_before.tensors.size());
  for (size_t i = 0; i < state_after.tensors.size(); ++i) {
    EXPECT_EQ(state_after.tensors[i].values, state_before.tensors[i].values)
        << state_after.tensors[i].name;
  }
  EXPECT_EQ(shard->status().pushes_invalid, static_cast<int64_t>(cases.size()));
  // A rejected request id is not remembered: sending it again correctly applies it.
  EXPECT_EQ(shard->ApplyGradients(Push(good, 1, 10))->version, 2);
}

TEST_F(ParameterShardTest, PullRejectsWrongBufferSizes) {
  std::unique_ptr<ParameterShard> shard = MakeShard(TinyConfig(OptimizerKind::kSgd));
  ASSERT_NE(shard, nullptr);
  std::vector<float> weights(16), state(6);
  absl::StatusOr<int64_t> pulled = shard->Pull(absl::MakeSpan(weights), absl::MakeSpan(state));
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pulled.status().message(), HasSubstr("16 floats, expected 17"));
  weights.resize(17);
  state.resize(2);
  EXPECT_FALSE(shard->Pull(absl::MakeSpan(weights), absl::MakeSpan(state)).ok());
  // Skipping the state is allowed.
  EXPECT_TRUE(shard->Pull(absl::MakeSpan(weights), {}).ok());
}

TEST_F(ParameterShardTest, ConcurrentPushesSumLikeSequentialOnes) {
  constexpr int kThreads = 4;
  constexpr int kPushesPerThread = 50;
  auto gradient = [](int thread, int push) {
    std::vector<float> g(17);
    for (int i = 0; i < 17; ++i) g[i] = 0.01f * ((thread * 31 + push * 7 + i) % 13 - 6);
    return g;
  };
  std::unique_ptr<ParameterShard> sequential = MakeShard(TinyConfig(OptimizerKind::kSgd));
  std::unique_ptr<ParameterShard> concurrent = MakeShard(TinyConfig(OptimizerKind::kSgd));
  ASSERT_NE(sequential, nullptr);
  ASSERT_NE(concurrent, nullptr);
  for (int t = 0; t < kThreads; ++t) {
    for (int p = 0; p < kPushesPerThread; ++p) {
      const std::vector<float> g = gradient(t, p);
      ASSERT_TRUE(sequential->ApplyGradients(Push(g, 0, p, t)).ok());
    }
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> weights(17);
      for (int p = 0; p < kPushesPerThread; ++p) {
        const std::vector<float> g = gradient(t, p);
        absl::StatusOr<int64_t> version = concurrent->Pull(absl::MakeSpan(weights), {});
        absl::StatusOr<ShardPushResult> result =
            concurrent->ApplyGradients(Push(g, version.value_or(0), p, t));
        EXPECT_TRUE(result.ok()) << result.status();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const Pulled a = PullAll(*sequential);
  const Pulled b = PullAll(*concurrent);
  EXPECT_EQ(b.version, kThreads * kPushesPerThread);
  for (int i = 0; i < 17; ++i) EXPECT_NEAR(a.weights[i], b.weights[i], 1e-5) << i;
  EXPECT_EQ(concurrent->status().pushes_applied, kThreads * kPushesPerThread);
  EXPECT_EQ(concurrent->status().examples_seen, 4 * kThreads * kPushesPerThread);
}

TEST_F(ParameterShardTest, ExportedStateRestoresWeightsSlotsStatisticsAndCounters) {
  std::unique_ptr<ParameterShard> source = MakeShard(TinyConfig(OptimizerKind::kRmsProp));
  ASSERT_NE(source, nullptr);
  std::vector<float> g(17);
  for (int i = 0; i < 17; ++i) g[i] = 0.05f * (i - 5);
  const std::vector<float> stats = {1, 2, 3, 4, 5, 6};
  for (int step = 0; step < 3; ++step) {
    ShardPushRequest push = Push(g, step, step);
    push.batch_stats = stats;
    ASSERT_TRUE(source->ApplyGradients(push).ok());
  }
  const ShardState exported = source->ExportState();
  EXPECT_EQ(exported.version, 3);
  EXPECT_EQ(exported.examples_seen, 12);
  // 4 parameter tensors x (weights, rms, momentum) + 2 moving statistics.
  ASSERT_EQ(exported.tensors.size(), 14u);
  EXPECT_EQ(exported.tensors[0].name, "a/weights");
  EXPECT_EQ(exported.tensors[1].name, "a/weights/rms");
  EXPECT_EQ(exported.tensors[2].name, "a/weights/momentum");
  EXPECT_EQ(exported.tensors[13].name, "a/BatchNorm/moving_variance");

  ParameterShardConfig other_seed = TinyConfig(OptimizerKind::kRmsProp);
  other_seed.seed = 99;
  std::unique_ptr<ParameterShard> restored = MakeShard(other_seed);
  ASSERT_NE(restored, nullptr);
  ASSERT_TRUE(restored->RestoreState(exported).ok());
  Pulled a = PullAll(*source);
  Pulled b = PullAll(*restored);
  EXPECT_EQ(b.version, 3);
  EXPECT_EQ(b.weights, a.weights);
  EXPECT_EQ(b.state, a.state);
  EXPECT_EQ(restored->status().examples_seen, 12);
  // The slots came along: one more identical step stays identical.
  ASSERT_TRUE(source->ApplyGradients(Push(g, 3, 100)).ok());
  ASSERT_TRUE(restored->ApplyGradients(Push(g, 3, 100)).ok());
  EXPECT_EQ(PullAll(*restored).weights, PullAll(*source).weights);

  // A whole-model export restores a shard holding only part of the model.
  ShardSpec part;
  part.parameters = {{"fc/weights", 1, 4}};
  part.state = {{"a/BatchNorm/moving_mean", 0, 2}};
  std::unique_ptr<ParameterShard> partial = MakeShard(part, other_seed);
  ASSERT_NE(partial, nullptr);
  ASSERT_TRUE(partial->RestoreState(exported).ok());
  Pulled p = PullAll(*partial);
  EXPECT_EQ(p.weights, (std::vector<float>{a.weights[10], a.weights[11], a.weights[12]}));
  EXPECT_EQ(p.state, (std::vector<float>{a.state[0], a.state[1]}));
}

TEST_F(ParameterShardTest, InvalidRestoreChangesNothing) {
  std::unique_ptr<ParameterShard> shard = MakeShard(TinyConfig(OptimizerKind::kRmsProp));
  ASSERT_NE(shard, nullptr);
  const std::vector<float> g(17, 1.0f);
  ASSERT_TRUE(shard->ApplyGradients(Push(g, 0, 1)).ok());
  const Pulled before = PullAll(*shard);
  ShardState good = shard->ExportState();
  for (ShardTensor& tensor : good.tensors) {
    for (float& v : tensor.values) v += 1.0f;
  }
  good.version = 50;

  ShardState missing_slot = good;
  missing_slot.tensors.erase(missing_slot.tensors.begin() + 1);  // a/weights/rms
  absl::Status status = shard->RestoreState(missing_slot);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("a/weights/rms covering [0, 6)"));

  ShardState too_short = good;
  too_short.tensors[3].values.pop_back();
  status = shard->RestoreState(too_short);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("holds 2 values, expected 3"));

  ShardState non_finite = good;
  non_finite.tensors.back().values[2] = std::nanf("");
  status = shard->RestoreState(non_finite);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("moving_variance[2] is nan"));

  ShardState negative = good;
  negative.examples_seen = -1;
  EXPECT_EQ(shard->RestoreState(negative).code(), absl::StatusCode::kInvalidArgument);

  // A momentum checkpoint has no "rms" slots for an rmsprop shard.
  std::unique_ptr<ParameterShard> momentum = MakeShard(TinyConfig(OptimizerKind::kMomentum));
  ASSERT_NE(momentum, nullptr);
  EXPECT_EQ(shard->RestoreState(momentum->ExportState()).code(), absl::StatusCode::kNotFound);

  const Pulled after = PullAll(*shard);
  EXPECT_EQ(after.version, before.version);
  EXPECT_EQ(after.weights, before.weights);
  EXPECT_EQ(after.state, before.state);
  EXPECT_TRUE(shard->RestoreState(good).ok());
  EXPECT_EQ(PullAll(*shard).version, 50);
}

TEST(StalenessPolicyTest, ParsesItsNames) {
  for (StalenessPolicy policy :
       {StalenessPolicy::kApply, StalenessPolicy::kScaleLearningRate, StalenessPolicy::kReject}) {
    EXPECT_EQ(*ParseStalenessPolicy(StalenessPolicyName(policy)), policy);
  }
  absl::StatusOr<StalenessPolicy> bad = ParseStalenessPolicy("ignore");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("apply, scale, reject"));
}

}  // namespace
}  // namespace mobilenet
