#include "parameter_server/core/parameter_shard.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/initializer.h"
#include "model/mobilenet_v1.h"
#include "parameter_server/core/tiny_layouts_for_test.h"

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
    pulled.version = shard.Pull(absl::MakeSpan(pulled.weights), absl::MakeSpan(pulled.state));
    return pulled;
  }

  // Checks and applies one push of `example_count` examples computed from `from_version`.
  static absl::StatusOr<AppliedUpdate> Apply(ParameterShard& shard,
                                             absl::Span<const float> gradients,
                                             int64_t from_version,
                                             absl::Span<const float> batch_stats = {},
                                             int64_t example_count = 4) {
    absl::StatusOr<ShardUpdate> update =
        ShardUpdate::Check(shard, "push", from_version, example_count, gradients, batch_stats);
    if (!update.ok()) return update.status();
    return shard.Apply(*update);
  }

  // Every tensor of the exported state, for before/after comparisons.
  static std::vector<std::vector<float>> Values(const ParameterShard& shard) {
    std::vector<std::vector<float>> values;
    for (const ShardTensor& tensor : shard.ExportState().tensors) values.push_back(tensor.values);
    return values;
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
    absl::StatusOr<AppliedUpdate> result = Apply(*shard, g, step);
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
  EXPECT_EQ(shard->DescribeParameter(0), "fc/weights[2]");
  EXPECT_EQ(shard->DescribeParameter(4), "a/weights[1]");
  EXPECT_EQ(shard->DescribeState(1), "a/BatchNorm/moving_variance[2]");
  Pulled before = PullAll(*shard);
  const std::vector<float> g = {1, 2, 3, 4, 5, 6};
  const std::vector<float> batch_stats = {3.0f, 5.0f};
  ASSERT_TRUE(Apply(*shard, g, 0, batch_stats).ok());
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
  ASSERT_TRUE(Apply(*shard, g, 0, batch_stats).ok());
  // mean 0.5*0 + 0.5*2 = 1, variance 0.5*1 + 0.5*3 = 2.
  EXPECT_EQ(PullAll(*shard).state, (std::vector<float>{1, 1, 1, 2, 2, 2}));
  ASSERT_TRUE(Apply(*shard, g, 1, batch_stats).ok());
  // mean 0.5*1 + 1 = 1.5, variance 0.5*2 + 1.5 = 2.5.
  EXPECT_EQ(PullAll(*shard).state, (std::vector<float>{1.5, 1.5, 1.5, 2.5, 2.5, 2.5}));
  // A push without statistics leaves them alone.
  ASSERT_TRUE(Apply(*shard, g, 2).ok());
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
    absl::StatusOr<AppliedUpdate> result = Apply(*shard, g, step);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->version, step + 1);
    EXPECT_FLOAT_EQ(result->learning_rate, expected_rates[step]) << "step " << step;
  }
  EXPECT_EQ(shard->version(), 5);
  EXPECT_EQ(shard->examples_seen(), 20);
  EXPECT_FLOAT_EQ(shard->learning_rate(), 0.025f);  // floor(20 / 8) = 2 decays
}

TEST_F(ParameterShardTest, ApplyPolicyReportsStalenessWithoutChangingTheRate) {
  std::unique_ptr<ParameterShard> shard = MakeShard(TinyConfig(OptimizerKind::kSgd));
  ASSERT_NE(shard, nullptr);
  const std::vector<float> g(17, 1.0f);
  // Eight pushes all computed from version 0: staleness 0..7.
  for (int i = 0; i < 8; ++i) {
    absl::StatusOr<AppliedUpdate> result = Apply(*shard, g, 0);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->staleness, i);
    EXPECT_FLOAT_EQ(result->learning_rate, 0.1f);
  }
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
    absl::StatusOr<AppliedUpdate> result = Apply(*shard, g, 0);
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
  ASSERT_TRUE(Apply(*shard, g, 0).ok());  // staleness 0
  ASSERT_TRUE(Apply(*shard, g, 0).ok());  // staleness 1
  const Pulled before = PullAll(*shard);
  absl::StatusOr<AppliedUpdate> rejected = Apply(*shard, g, 0);
  ASSERT_FALSE(rejected.ok());
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(rejected.status().message(), HasSubstr("2 versions stale"));
  EXPECT_THAT(rejected.status().message(), HasSubstr("max_staleness 1"));
  const Pulled after = PullAll(*shard);
  EXPECT_EQ(after.version, 2);
  EXPECT_EQ(after.weights, before.weights);
  // A fresh push still goes through.
  ASSERT_TRUE(Apply(*shard, g, 2).ok());
  EXPECT_EQ(shard->examples_seen(), 12);
}

TEST_F(ParameterShardTest, MalformedUpdatesAreRefusedByTheCheckNamingTheProblem) {
  std::unique_ptr<ParameterShard> shard = MakeShard(TinyConfig(OptimizerKind::kRmsProp));
  ASSERT_NE(shard, nullptr);
  const std::vector<float> good(17, 0.5f);
  const std::vector<float> short_gradients(16, 0.5f);
  std::vector<float> nan_gradients = good;
  nan_gradients[10] = std::nanf("");  // fc/weights element 1
  const std::vector<float> stats(6, 1.0f);
  std::vector<float> inf_stats = stats;
  inf_stats[4] = std::numeric_limits<float>::infinity();  // moving_variance element 1
  std::vector<float> negative_variance = stats;
  negative_variance[5] = -0.5f;  // moving_variance element 2
  std::vector<float> negative_mean = stats;
  negative_mean[0] = -3.0f;  // a mean may be negative
  const std::vector<float> short_stats(5, 1.0f);
  struct Case {
    absl::Span<const float> gradients;
    absl::Span<const float> stats;
    int64_t version;
    int64_t examples;
    const char* message;
  };
  const std::vector<Case> cases = {
      {short_gradients, {}, 0, 4, "16 gradient values, expected 17"},
      {nan_gradients, {}, 0, 4, "gradient for fc/weights[1] is nan"},
      {good, inf_stats, 0, 4, "batch statistic for a/BatchNorm/moving_variance[1] is inf"},
      {good, negative_variance, 0, 4,
       "a/BatchNorm/moving_variance[2] is -0.5; a variance is never negative"},
      {good, short_stats, 0, 4, "5 batch statistics, expected 6 or none"},
      {good, {}, 0, 0, "example count 0, expected 1 to 1048576"},
      {good, {}, 0, kMaxExamplesPerPush + 1, "example count 1048577"},
      {good, {}, 0, int64_t{1} << 62, "example count 4611686018427387904"},
      {good, {}, -1, 4, "computed from version -1"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ShardUpdate> update =
        ShardUpdate::Check(*shard, "push from worker 3", c.version, c.examples, c.gradients, c.stats);
    ASSERT_FALSE(update.ok()) << c.message;
    EXPECT_EQ(update.status().code(), absl::StatusCode::kInvalidArgument) << update.status();
    EXPECT_THAT(update.status().message(), HasSubstr(c.message));
    EXPECT_THAT(update.status().message(), HasSubstr("push from worker 3"));
  }
  EXPECT_TRUE(ShardUpdate::Check(*shard, "push", 0, 4, good, negative_mean).ok());
}

TEST_F(ParameterShardTest, AnUpdateThatWouldOverflowIsRefusedWholeAndChangesNothing) {
  // Finite but huge gradients: RMSprop's mean square g^2 overflows. Before, such a push
  // was applied, the slot became inf, and the next checkpoint could not be restored.
  std::unique_ptr<ParameterShard> shard = MakeShard(TinyConfig(OptimizerKind::kRmsProp));
  ASSERT_NE(shard, nullptr);
  ASSERT_TRUE(Apply(*shard, std::vector<float>(17, 0.5f), 0).ok());
  const std::vector<std::vector<float>> before = Values(*shard);
  std::vector<float> huge(17, 0.5f);
  huge[12] = 1e30f;  // fc/weights[3]
  absl::StatusOr<AppliedUpdate> refused = Apply(*shard, huge, 1, std::vector<float>(6, 1.0f));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("would make the rms of fc/weights[3] inf (gradient 1e+30"));
  EXPECT_THAT(refused.status().message(), HasSubstr("nothing applied"));
  EXPECT_EQ(shard->version(), 1);
  EXPECT_EQ(shard->examples_seen(), 4);
  EXPECT_EQ(Values(*shard), before);
  // Large but safe gradients are applied (the exact check clears what the bounds cannot).
  std::vector<float> large(17, 0.5f);
  large[0] = 1e17f;
  ASSERT_TRUE(Apply(*shard, large, 1).ok());
  for (const std::vector<float>& values : Values(*shard)) {
    for (float v : values) ASSERT_TRUE(std::isfinite(v));
  }
  // SGD: a (restored) weight near the float range pushed beyond it.
  std::unique_ptr<ParameterShard> sgd = MakeShard(TinyConfig(OptimizerKind::kSgd));
  ASSERT_NE(sgd, nullptr);
  ShardState near_limit = sgd->ExportState();
  near_limit.tensors[0].values[2] = 3.3e38f;  // a/weights[2]
  ASSERT_TRUE(sgd->RestoreState(near_limit).ok());
  const std::vector<std::vector<float>> sgd_before = Values(*sgd);
  std::vector<float> push_up(17, 0.0f);
  push_up[2] = -3.4e38f;  // 3.3e38 + 0.1 * 3.4e38 overflows
  absl::StatusOr<AppliedUpdate> overflow = Apply(*sgd, push_up, 0);
  ASSERT_FALSE(overflow.ok());
  EXPECT_THAT(overflow.status().message(), HasSubstr("the weight of a/weights[2] inf"));
  EXPECT_EQ(Values(*sgd), sgd_before);
  EXPECT_EQ(sgd->version(), 0);
}

TEST_F(ParameterShardTest, AVersionFromTheFutureIsRefused) {
  std::unique_ptr<ParameterShard> shard = MakeShard(TinyConfig(OptimizerKind::kSgd));
  ASSERT_NE(shard, nullptr);
  absl::StatusOr<AppliedUpdate> refused = Apply(*shard, std::vector<float>(17, 1.0f), 5);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("computed from version 5, but the shard is only at version 0"));
  EXPECT_EQ(shard->version(), 0);
}

TEST_F(ParameterShardTest, APullReturnsTheWeightsOfExactlyTheVersionItReports) {
  // SGD with learning rate 1 and gradients 1 from weights 0: after version v every weight
  // is exactly -v. Concurrent pulls must never see a version with other weights (before,
  // the version was counted before the update was written, so a pull could report v + 1
  // with the weights of v).
  ParameterShardConfig config = TinyConfig(OptimizerKind::kSgd);
  config.learning_rate.initial_learning_rate = 1.0f;
  MobileNetConfig model;
  model.alpha = 0.25f;
  model.resolution = 32;
  model.num_classes = 10;
  absl::StatusOr<Architecture> arch = BuildArchitecture(model);
  ASSERT_TRUE(arch.ok());
  const ParameterLayout params = BuildParameterLayout(*arch);
  const ParameterLayout state = BuildStateLayout(*arch);
  absl::StatusOr<std::unique_ptr<ParameterShard>> created =
      ParameterShard::Create(params, state, WholeModelShardSpec(params, state), config);
  ASSERT_TRUE(created.ok()) << created.status();
  ParameterShard& shard = **created;
  ShardState zeros = shard.ExportState();
  for (ShardTensor& tensor : zeros.tensors) std::fill(tensor.values.begin(), tensor.values.end(), 0);
  ASSERT_TRUE(shard.RestoreState(zeros).ok());

  constexpr int kPushes = 300;
  std::atomic<bool> done{false};
  std::atomic<int> inconsistent{0}, pulls{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      std::vector<float> weights(shard.parameter_count());
      while (!done) {
        const int64_t version = shard.Pull(absl::MakeSpan(weights), {});
        ++pulls;
        for (float w : weights) {
          if (w != -static_cast<float>(version)) {
            ++inconsistent;
            break;
          }
        }
      }
    });
  }
  const std::vector<float> ones(shard.parameter_count(), 1.0f);
  // At least kPushes, and on until the readers pulled during the pushes (however the
  // threads are scheduled on a loaded machine).
  int pushed = 0;
  while (pushed < kPushes || (pulls < 20 && pushed < 100 * kPushes)) {
    ASSERT_TRUE(Apply(shard, ones, pushed).ok());
    ++pushed;
  }
  done = true;
  for (std::thread& reader : readers) reader.join();
  EXPECT_EQ(inconsistent, 0) << "of " << pulls << " pulls";
  EXPECT_GE(pulls, 20);
  EXPECT_EQ(shard.version(), pushed);
}

TEST_F(ParameterShardTest, ConcurrentPushesAreAppliedOneAtATimeAndAllCount) {
  constexpr int kThreads = 4;
  constexpr int kPushesPerThread = 50;
  ParameterShardConfig config = TinyConfig(OptimizerKind::kSgd);
  config.learning_rate.initial_learning_rate = 1.0f;
  std::unique_ptr<ParameterShard> shard = MakeShard(config);
  ASSERT_NE(shard, nullptr);
  ShardState zeros = shard->ExportState();
  for (ShardTensor& tensor : zeros.tensors) std::fill(tensor.values.begin(), tensor.values.end(), 0);
  ASSERT_TRUE(shard->RestoreState(zeros).ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::vector<float> weights(17);
      const std::vector<float> ones(17, 1.0f);
      for (int p = 0; p < kPushesPerThread; ++p) {
        const int64_t version = shard->Pull(absl::MakeSpan(weights), {});
        absl::StatusOr<AppliedUpdate> result = Apply(*shard, ones, version);
        EXPECT_TRUE(result.ok()) << result.status();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const Pulled after = PullAll(*shard);
  EXPECT_EQ(after.version, kThreads * kPushesPerThread);
  EXPECT_EQ(after.weights, std::vector<float>(17, -kThreads * kPushesPerThread));
  EXPECT_EQ(shard->examples_seen(), 4 * kThreads * kPushesPerThread);
}

TEST_F(ParameterShardTest, ExportedStateRestoresWeightsSlotsStatisticsAndCounters) {
  std::unique_ptr<ParameterShard> source = MakeShard(TinyConfig(OptimizerKind::kRmsProp));
  ASSERT_NE(source, nullptr);
  std::vector<float> g(17);
  for (int i = 0; i < 17; ++i) g[i] = 0.05f * (i - 5);
  const std::vector<float> stats = {1, 2, 3, 4, 5, 6};
  for (int step = 0; step < 3; ++step) ASSERT_TRUE(Apply(*source, g, step, stats).ok());
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
  EXPECT_EQ(restored->examples_seen(), 12);
  // The slots came along: one more identical step stays identical.
  ASSERT_TRUE(Apply(*source, g, 3).ok());
  ASSERT_TRUE(Apply(*restored, g, 3).ok());
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
  ASSERT_TRUE(Apply(*shard, std::vector<float>(17, 1.0f), 0).ok());
  const std::vector<std::vector<float>> before = Values(*shard);
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

  ShardState negative_rms = good;
  negative_rms.tensors[1].values[4] = -1.0f;  // a/weights/rms
  status = shard->RestoreState(negative_rms);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("a/weights/rms[4] is -1; expected finite values >= 0"));

  ShardState negative_variance = good;
  negative_variance.tensors.back().values[0] = -2.0f;
  status = shard->RestoreState(negative_variance);
  EXPECT_THAT(status.message(), HasSubstr("moving_variance[0] is -2"));

  ShardState negative = good;
  negative.examples_seen = -1;
  EXPECT_EQ(shard->RestoreState(negative).code(), absl::StatusCode::kInvalidArgument);

  // A momentum checkpoint has no "rms" slots for an rmsprop shard.
  std::unique_ptr<ParameterShard> momentum = MakeShard(TinyConfig(OptimizerKind::kMomentum));
  ASSERT_NE(momentum, nullptr);
  EXPECT_EQ(shard->RestoreState(momentum->ExportState()).code(), absl::StatusCode::kNotFound);

  EXPECT_EQ(Values(*shard), before);
  EXPECT_EQ(shard->version(), 1);
  EXPECT_TRUE(shard->RestoreState(good).ok());
  EXPECT_EQ(PullAll(*shard).version, 50);
}

// Weights and averages of the tiny model all `value`, moving statistics at their initial
// values, version `version`: a state to restore whose arithmetic is easy by hand.
ShardState UniformState(const ParameterShard& shard, float value, int64_t version) {
  ShardState state = shard.ExportState();
  for (ShardTensor& tensor : state.tensors) {
    if (tensor.name.find("moving_") == std::string::npos) {
      std::fill(tensor.values.begin(), tensor.values.end(), value);
    }
  }
  state.version = version;
  state.examples_seen = 4 * version;
  return state;
}

std::vector<float> PullAverage(const ParameterShard& shard) {
  std::vector<float> average(shard.parameter_count());
  shard.Pull(absl::MakeSpan(average), {}, WeightsKind::kAverage);
  return average;
}

TEST(WeightAverageDecayTest, WarmsUpLikeTensorFlowsNumUpdates) {
  EXPECT_DOUBLE_EQ(WeightAverageDecay(0.9999f, 0), 0.1);
  EXPECT_DOUBLE_EQ(WeightAverageDecay(0.9999f, 1), 2.0 / 11.0);
  EXPECT_DOUBLE_EQ(WeightAverageDecay(0.5f, 7), 8.0 / 17.0);
  // From n = (10 * decay - 1) / (1 - decay) = 8 on, the configured decay.
  EXPECT_DOUBLE_EQ(WeightAverageDecay(0.5f, 8), 0.5);
  EXPECT_DOUBLE_EQ(WeightAverageDecay(0.5f, 1000000), 0.5);
}

TEST(WeightsKindTest, ParsesItsNames) {
  EXPECT_EQ(*ParseWeightsKind("raw"), WeightsKind::kRaw);
  EXPECT_EQ(*ParseWeightsKind("ema"), WeightsKind::kAverage);
  EXPECT_THAT(ParseWeightsKind("average").status().message(), HasSubstr("expected raw or ema"));
}

TEST_F(ParameterShardTest, WeightAverageIsOffByDefaultAndValidated) {
  std::unique_ptr<ParameterShard> plain = MakeShard(TinyConfig(OptimizerKind::kSgd));
  ASSERT_NE(plain, nullptr);
  EXPECT_FALSE(plain->keeps_weight_average());
  for (const ShardTensor& tensor : plain->ExportState().tensors) {
    EXPECT_THAT(tensor.name, ::testing::Not(HasSubstr(kWeightAverageSlot)));
  }
  for (float bad : {-0.1f, 1.0f, std::nanf("")}) {
    ParameterShardConfig config = TinyConfig(OptimizerKind::kSgd);
    config.weight_ema_decay = bad;
    absl::StatusOr<std::unique_ptr<ParameterShard>> shard =
        ParameterShard::Create(params_, state_, WholeModelShardSpec(params_, state_), config);
    EXPECT_EQ(shard.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(shard.status().message(), HasSubstr("weight_ema_decay must be in [0, 1)"));
  }
}

TEST_F(ParameterShardTest, WeightAverageStartsAtTheInitialWeightsAndWarmsUp) {
  ParameterShardConfig config = TinyConfig(OptimizerKind::kSgd);
  config.weight_ema_decay = 0.2f;
  std::unique_ptr<ParameterShard> shard = MakeShard(config);
  ASSERT_NE(shard, nullptr);
  ASSERT_TRUE(shard->keeps_weight_average());
  EXPECT_EQ(PullAverage(*shard), PullAll(*shard).weights);

  // Weights and average 1, gradients 1, learning rate 0.1: weights 0.9, 0.8, 0.7.
  ASSERT_TRUE(shard->RestoreState(UniformState(*shard, 1.0f, 0)).ok());
  const std::vector<float> g(17, 1.0f);
  auto expect_all = [](const std::vector<float>& values, float expected) {
    for (float v : values) EXPECT_NEAR(v, expected, 1e-6f);
  };
  ASSERT_TRUE(Apply(*shard, g, 0).ok());
  // n = 0: d = min(0.2, 1/10) = 0.1; 0.1 * 1 + 0.9 * 0.9 = 0.91.
  expect_all(PullAverage(*shard), 0.91f);
  ASSERT_TRUE(Apply(*shard, g, 1).ok());
  // n = 1: d = min(0.2, 2/11) = 2/11; (2 * 0.91 + 9 * 0.8) / 11 = 0.82.
  expect_all(PullAverage(*shard), 0.82f);
  ASSERT_TRUE(Apply(*shard, g, 2).ok());
  // n = 2: d = min(0.2, 3/12) = 0.2; 0.2 * 0.82 + 0.8 * 0.7 = 0.724.
  expect_all(PullAverage(*shard), 0.724f);
  expect_all(PullAll(*shard).weights, 0.7f);

  // A refused push leaves the average alone.
  EXPECT_FALSE(Apply(*shard, g, 9).ok());
  expect_all(PullAverage(*shard), 0.724f);
}

TEST_F(ParameterShardTest, WeightAverageRoundTripsThroughExportAndRestore) {
  ParameterShardConfig config = TinyConfig(OptimizerKind::kRmsProp);
  config.weight_ema_decay = 0.9f;
  std::unique_ptr<ParameterShard> source = MakeShard(config);
  ASSERT_NE(source, nullptr);
  std::vector<float> g(17);
  for (int i = 0; i < 17; ++i) g[i] = 0.05f * (i - 5);
  for (int step = 0; step < 3; ++step) ASSERT_TRUE(Apply(*source, g, step).ok());
  const ShardState exported = source->ExportState();
  // 4 parameter tensors x (weights, rms, momentum, average) + 2 moving statistics.
  ASSERT_EQ(exported.tensors.size(), 18u);
  EXPECT_EQ(exported.tensors[3].name, "a/weights/ExponentialMovingAverage");
  EXPECT_NE(PullAverage(*source), PullAll(*source).weights);

  ParameterShardConfig other_seed = config;
  other_seed.seed = 99;
  std::unique_ptr<ParameterShard> restored = MakeShard(other_seed);
  ASSERT_NE(restored, nullptr);
  ASSERT_TRUE(restored->RestoreState(exported).ok());
  EXPECT_EQ(PullAverage(*restored), PullAverage(*source));
  ASSERT_TRUE(Apply(*source, g, 3).ok());
  ASSERT_TRUE(Apply(*restored, g, 3).ok());
  EXPECT_EQ(PullAverage(*restored), PullAverage(*source));

  // A shard keeping no average restores the same checkpoint and ignores the average.
  ParameterShardConfig off = other_seed;
  off.weight_ema_decay = 0.0f;
  std::unique_ptr<ParameterShard> plain = MakeShard(off);
  ASSERT_NE(plain, nullptr);
  ASSERT_TRUE(plain->RestoreState(exported).ok());
  EXPECT_EQ(plain->ExportState().tensors.size(), 14u);

  // A checkpoint without averages (written with the average off) restores with the
  // average equal to the restored weights.
  std::unique_ptr<ParameterShard> turned_on = MakeShard(other_seed);
  ASSERT_NE(turned_on, nullptr);
  ASSERT_TRUE(turned_on->RestoreState(plain->ExportState()).ok());
  EXPECT_EQ(PullAverage(*turned_on), PullAll(*plain).weights);
}

TEST_F(ParameterShardTest, ANonFiniteAverageIsRefusedByRestore) {
  ParameterShardConfig config = TinyConfig(OptimizerKind::kSgd);
  config.weight_ema_decay = 0.9f;
  std::unique_ptr<ParameterShard> shard = MakeShard(config);
  ASSERT_NE(shard, nullptr);
  const std::vector<float> before = PullAverage(*shard);
  ShardState bad = UniformState(*shard, 1.0f, 3);
  for (ShardTensor& tensor : bad.tensors) {
    if (tensor.name == "fc/biases/ExponentialMovingAverage") tensor.values[1] = INFINITY;
  }
  absl::Status status = shard->RestoreState(bad);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("fc/biases/ExponentialMovingAverage[1] is inf; expected finite values"));
  EXPECT_EQ(PullAverage(*shard), before);
  EXPECT_EQ(shard->version(), 0);
}

TEST(StalenessPolicyTest, ParsesItsNames) {
  for (StalenessPolicy policy : {StalenessPolicy::kApply, StalenessPolicy::kScaleLearningRate,
                                 StalenessPolicy::kReject, StalenessPolicy::kDelayCompensation}) {
    EXPECT_EQ(*ParseStalenessPolicy(StalenessPolicyName(policy)), policy);
  }
  EXPECT_EQ(*ParseStalenessPolicy("dc"), StalenessPolicy::kDelayCompensation);
  absl::StatusOr<StalenessPolicy> bad = ParseStalenessPolicy("ignore");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("apply, scale, reject, dc"));
}

// Delay compensation on a shard of 3 weights (a/BatchNorm/gamma) whose values the tests
// set, with dc_lambda 0.5 and a constant learning rate 0.5, so that every number below is
// exact in binary.
class DelayCompensationTest : public ParameterShardTest {
 protected:
  static ParameterShardConfig DcConfig(OptimizerKind kind) {
    ParameterShardConfig config = TinyConfig(kind);
    config.staleness_policy = StalenessPolicy::kDelayCompensation;
    config.dc_lambda = 0.5f;
    config.learning_rate.initial_learning_rate = 0.5f;
    return config;
  }

  // A shard for 2 workers whose weights are `weights` at version 0.
  std::unique_ptr<ParameterShard> MakeDcShard(const ParameterShardConfig& config,
                                              const std::vector<float>& weights) {
    absl::StatusOr<std::unique_ptr<ParameterShard>> created = ParameterShard::Create(
        params_, state_, {{{"a/BatchNorm/gamma", 0, 3}}, {}}, config, /*num_workers=*/2);
    EXPECT_TRUE(created.ok()) << created.status();
    if (!created.ok()) return nullptr;
    ShardState state = (*created)->ExportState();
    EXPECT_EQ(state.tensors[0].name, "a/BatchNorm/gamma");
    state.tensors[0].values = weights;
    EXPECT_TRUE((*created)->RestoreState(state).ok());
    return std::move(*created);
  }

  static int64_t TrainingPull(ParameterShard& shard, int worker) {
    std::vector<float> weights(shard.parameter_count());
    return shard.PullForTraining(worker, absl::MakeSpan(weights), {});
  }

  static absl::StatusOr<AppliedUpdate> Push(ParameterShard& shard, int worker,
                                            const std::vector<float>& gradients,
                                            int64_t from_version) {
    absl::StatusOr<ShardUpdate> update =
        ShardUpdate::Check(shard, "push", from_version, 4, gradients, {});
    if (!update.ok()) return update.status();
    return shard.Apply(*update, worker);
  }

  struct StaleRmsPropRun {
    std::vector<float> w1;                      // the weights after g1
    std::vector<float> rms, momentum, weights;  // after g0
    DelayCompensationCounts counts;
  };

  // A shard of `config` holding [1, 2, 3]; worker 0 pulls version 0, worker 1 (no backup)
  // pushes g1 as it came, then worker 0 pushes g0 from version 0, one version stale.
  StaleRmsPropRun PushStaleToRmsProp(const ParameterShardConfig& config,
                                     const std::vector<float>& g1, const std::vector<float>& g0) {
    StaleRmsPropRun run;
    std::unique_ptr<ParameterShard> shard = MakeDcShard(config, {1, 2, 3});
    if (shard == nullptr) return run;
    EXPECT_EQ(TrainingPull(*shard, 0), 0);
    EXPECT_TRUE(Push(*shard, 1, g1, 0).ok());
    run.w1 = PullAll(*shard).weights;
    EXPECT_TRUE(Push(*shard, 0, g0, 0).ok());
    for (const ShardTensor& tensor : shard->ExportState().tensors) {
      if (tensor.name == "a/BatchNorm/gamma/rms") run.rms = tensor.values;
      if (tensor.name == "a/BatchNorm/gamma/momentum") run.momentum = tensor.values;
      if (tensor.name == "a/BatchNorm/gamma") run.weights = tensor.values;
    }
    run.counts = shard->delay_compensation_counts();
    return run;
  }
};

TEST_F(DelayCompensationTest, AStalePushIsCorrectedTowardsTheCurrentWeights) {
  // SGD, lr 0.5, lambda 0.5, w0 = [1, 2, 3].
  std::unique_ptr<ParameterShard> shard = MakeDcShard(DcConfig(OptimizerKind::kSgd), {1, 2, 3});
  ASSERT_NE(shard, nullptr);
  EXPECT_EQ(shard->backup_floats(), 0);  // nothing before a training pull
  // Both workers pull version 0: w_bak = [1, 2, 3] for each.
  ASSERT_EQ(TrainingPull(*shard, 0), 0);
  ASSERT_EQ(TrainingPull(*shard, 1), 0);
  EXPECT_EQ(shard->backup_floats(), 2 * WeightBackups::kPullsPerWorker * 3);
  // Worker 1 pushes g1 = [1, -2, 0] from version 0, fresh: w_now - w_bak = 0, g~ = g1.
  //   w1 = w0 - 0.5 g1 = [1 - 0.5, 2 + 1, 3] = [0.5, 3, 3]
  absl::StatusOr<AppliedUpdate> first = Push(*shard, 1, {1, -2, 0}, 0);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->compensated);
  EXPECT_EQ(PullAll(*shard).weights, (std::vector<float>{0.5f, 3, 3}));
  // Worker 0 pushes g0 = [2, 1, 4] from version 0, one version stale:
  //   w_now - w_bak = [0.5 - 1, 3 - 2, 3 - 3] = [-0.5, 1, 0]
  //   g~ = g0 + 0.5 g0^2 (w_now - w_bak) = [2 + 0.5*4*(-0.5), 1 + 0.5*1*1, 4 + 0.5*16*0]
  //      = [1, 1.5, 4]
  //   w2 = w1 - 0.5 g~ = [0.5 - 0.5, 3 - 0.75, 3 - 2] = [0, 2.25, 1]
  // (uncompensated it would be [0.5 - 1, 3 - 0.5, 1] = [-0.5, 2.5, 1]).
  absl::StatusOr<AppliedUpdate> second = Push(*shard, 0, {2, 1, 4}, 0);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->compensated);
  EXPECT_EQ(second->staleness, 1);
  EXPECT_EQ(PullAll(*shard).weights, (std::vector<float>{0, 2.25f, 1}));
  const DelayCompensationCounts counts = shard->delay_compensation_counts();
  EXPECT_EQ(counts.compensated, 2);
  EXPECT_EQ(counts.uncompensated, 0);
}

TEST_F(DelayCompensationTest, RmsPropSeesTheCorrectedGradientInItsMeanSquareAndStep) {
  const std::vector<float> g1 = {1, -2, 0.5f}, g0 = {2, 1, -4};
  const StaleRmsPropRun run = PushStaleToRmsProp(DcConfig(OptimizerKind::kRmsProp), g1, g0);
  ASSERT_EQ(run.rms.size(), 3u);
  ASSERT_EQ(run.momentum.size(), 3u);
  // TensorFlow's RMSprop (rho 0.9, momentum 0.9, epsilon 1; ms starts at 1, mom at 0)
  // fed g1, then g~ = g0 + 0.5 g0^2 (w1 - w0).
  const double w0[] = {1, 2, 3};
  const std::vector<float>& w1 = run.w1;
  for (int i = 0; i < 3; ++i) {
    const double corrected = g0[i] + 0.5 * g0[i] * g0[i] * (w1[i] - w0[i]);
    double ms = 0.9 * 1.0 + 0.1 * g1[i] * g1[i];
    double mom = 0.5 * g1[i] / std::sqrt(ms + 1.0);
    ms = 0.9 * ms + 0.1 * corrected * corrected;
    mom = 0.9 * mom + 0.5 * corrected / std::sqrt(ms + 1.0);
    EXPECT_NEAR(run.rms[i], ms, 1e-5) << i;
    EXPECT_NEAR(run.momentum[i], mom, 1e-5) << i;
    EXPECT_NEAR(run.weights[i], w1[i] - mom, 1e-5) << i;
  }
  // The correction is not negligible here: g0^2 (w1 - w0) is far from 0.
  EXPECT_GT(std::abs(g0[1] * g0[1] * (w1[1] - w0[1])), 0.1);
  EXPECT_EQ(run.counts.compensated, 1);
  EXPECT_EQ(run.counts.uncompensated, 1);
}

TEST_F(DelayCompensationTest, AnOverlappingWorkersPushMatchesItsOlderPull) {
  std::unique_ptr<ParameterShard> shard = MakeDcShard(DcConfig(OptimizerKind::kSgd), {1, 2, 3});
  ASSERT_NE(shard, nullptr);
  // Worker 0 computes on version 0 while worker 1's push lands and worker 0 pulls the
  // next weights (version 1): backups [1, 2, 3] (v0) and [0.5, 3, 3] (v1).
  ASSERT_EQ(TrainingPull(*shard, 0), 0);
  ASSERT_TRUE(Push(*shard, 1, {1, -2, 0}, 0).ok());  // w1 = [0.5, 3, 3], uncompensated
  ASSERT_EQ(TrainingPull(*shard, 0), 1);
  // Its push from version 0 matches the v0 backup, as in the example above: w2 =
  // [0, 2.25, 1] (the v1 backup would have left g unchanged: [-0.5, 2.5, 1]).
  ASSERT_TRUE(Push(*shard, 0, {2, 1, 4}, 0).ok());
  EXPECT_EQ(PullAll(*shard).weights, (std::vector<float>{0, 2.25f, 1}));
  // Its next push, g = [1, 1, 1] from version 1, matches the v1 backup:
  //   w_now - w_bak = [0 - 0.5, 2.25 - 3, 1 - 3] = [-0.5, -0.75, -2]
  //   g~ = 1 + 0.5 * 1 * [-0.5, -0.75, -2] = [0.75, 0.625, 0]
  //   w3 = w2 - 0.5 g~ = [-0.375, 2.25 - 0.3125, 1] = [-0.375, 1.9375, 1]
  absl::StatusOr<AppliedUpdate> third = Push(*shard, 0, {1, 1, 1}, 1);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_TRUE(third->compensated);
  EXPECT_EQ(PullAll(*shard).weights, (std::vector<float>{-0.375f, 1.9375f, 1}));
  EXPECT_EQ(shard->delay_compensation_counts().compensated, 2);
  EXPECT_EQ(shard->delay_compensation_counts().uncompensated, 1);
}

TEST_F(DelayCompensationTest, WithoutAMatchingBackupAPushIsAppliedAsItCameAndCounted) {
  std::unique_ptr<ParameterShard> shard = MakeDcShard(DcConfig(OptimizerKind::kSgd), {1, 2, 3});
  ASSERT_NE(shard, nullptr);
  ASSERT_EQ(TrainingPull(*shard, 0), 0);
  ASSERT_TRUE(Push(*shard, 1, {0, 0, 0}, 0).ok());  // worker 1 never pulled
  ASSERT_EQ(TrainingPull(*shard, 0), 1);
  ASSERT_TRUE(Push(*shard, 1, {0, 0, 0}, 0).ok());
  ASSERT_EQ(TrainingPull(*shard, 0), 2);  // evicts worker 0's backup of version 0
  // w = [1, 2, 3] still (zero gradients); g = [2, 2, 2] from version 0 as it came:
  // w - 0.5 g = [0, 1, 2].
  absl::StatusOr<AppliedUpdate> evicted = Push(*shard, 0, {2, 2, 2}, 0);
  ASSERT_TRUE(evicted.ok()) << evicted.status();
  EXPECT_FALSE(evicted->compensated);
  EXPECT_EQ(PullAll(*shard).weights, (std::vector<float>{0, 1, 2}));
  // A worker outside the shard's cluster, and an unknown one, find no backup either.
  ASSERT_EQ(TrainingPull(*shard, 2), 3);
  EXPECT_FALSE(Push(*shard, 2, {0, 0, 0}, 3)->compensated);
  EXPECT_FALSE(Push(*shard, -1, {0, 0, 0}, 4)->compensated);
  // A restore forgets every backup: the versions they name may hold other weights now.
  ASSERT_EQ(TrainingPull(*shard, 0), 5);
  ASSERT_TRUE(shard->RestoreState(shard->ExportState()).ok());
  EXPECT_FALSE(Push(*shard, 0, {0, 0, 0}, 5)->compensated);
  const DelayCompensationCounts counts = shard->delay_compensation_counts();
  EXPECT_EQ(counts.compensated, 0);
  EXPECT_EQ(counts.uncompensated, 6);
}

TEST_F(DelayCompensationTest, ACorrectionThatOverflowsIsRefusedAndChangesNothing) {
  std::unique_ptr<ParameterShard> shard = MakeDcShard(DcConfig(OptimizerKind::kSgd), {1, 2, 3});
  ASSERT_NE(shard, nullptr);
  ASSERT_EQ(TrainingPull(*shard, 0), 0);
  // Worker 1 moves gamma[2] to 3 + 0.5e30 = 5e29.
  ASSERT_TRUE(Push(*shard, 1, {0, 0, -1e30f}, 0).ok());
  const std::vector<std::vector<float>> before = Values(*shard);
  // g = 1e5 (finite, and 0.5 * 1e5 is a safe step), but g~ = 1e5 + 0.5 * 1e10 * 5e29
  // = 2.5e39 overflows a float.
  absl::StatusOr<AppliedUpdate> refused = Push(*shard, 0, {1, 1, 1e5f}, 0);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("delay-compensated gradient for a/BatchNorm/gamma[2] is inf"));
  EXPECT_THAT(refused.status().message(), HasSubstr("nothing applied"));
  EXPECT_EQ(Values(*shard), before);
  EXPECT_EQ(shard->version(), 1);
  EXPECT_EQ(shard->examples_seen(), 4);
  EXPECT_EQ(shard->delay_compensation_counts().compensated, 0);
  EXPECT_EQ(shard->delay_compensation_counts().uncompensated, 1);
  // The backup is still there: a sane push from version 0 is compensated.
  absl::StatusOr<AppliedUpdate> sane = Push(*shard, 0, {1, 1, 0}, 0);
  ASSERT_TRUE(sane.ok()) << sane.status();
  EXPECT_TRUE(sane->compensated);
}

TEST_F(DelayCompensationTest, OtherPoliciesKeepNoBackups) {
  ParameterShardConfig config = DcConfig(OptimizerKind::kSgd);
  config.staleness_policy = StalenessPolicy::kApply;
  std::unique_ptr<ParameterShard> shard = MakeDcShard(config, {1, 2, 3});
  ASSERT_NE(shard, nullptr);
  ASSERT_EQ(TrainingPull(*shard, 0), 0);
  ASSERT_TRUE(Push(*shard, 1, {1, -2, 0}, 0).ok());
  absl::StatusOr<AppliedUpdate> applied = Push(*shard, 0, {2, 1, 4}, 0);
  ASSERT_TRUE(applied.ok());
  EXPECT_FALSE(applied->compensated);
  EXPECT_EQ(PullAll(*shard).weights, (std::vector<float>{-0.5f, 2.5f, 1}));
  EXPECT_EQ(shard->backup_floats(), 0);
  EXPECT_EQ(shard->delay_compensation_counts().uncompensated, 0);
}

TEST_F(DelayCompensationTest, AdaptiveLambdaIsRelativeToRmsPropsMeanSquare) {
  ParameterShardConfig config = DcConfig(OptimizerKind::kRmsProp);
  config.dc_adaptive = true;
  const std::vector<float> g1 = {1, -2, 0.5f}, g0 = {2, 1, -4};
  const StaleRmsPropRun run = PushStaleToRmsProp(config, g1, g0);
  ASSERT_EQ(run.rms.size(), 3u);
  // As RmsPropSeesTheCorrectedGradient..., with lambda 0.5 / sqrt(ms') where ms' is the
  // mean square after g1 updated with g0 (not with g~).
  const double w0[] = {1, 2, 3};
  for (int i = 0; i < 3; ++i) {
    const double ms1 = 0.9 * 1.0 + 0.1 * g1[i] * g1[i];
    const double next = 0.9 * ms1 + 0.1 * g0[i] * g0[i];
    const double corrected = g0[i] + 0.5 * g0[i] * g0[i] * (run.w1[i] - w0[i]) / std::sqrt(next);
    EXPECT_NEAR(run.rms[i], 0.9 * ms1 + 0.1 * corrected * corrected, 1e-5) << i;
  }
  EXPECT_EQ(run.counts.compensated, 1);
}

TEST_F(DelayCompensationTest, AdaptiveNeedsRmsProp) {
  ParameterShardConfig config = DcConfig(OptimizerKind::kMomentum);
  config.dc_adaptive = true;
  absl::StatusOr<std::unique_ptr<ParameterShard>> shard =
      ParameterShard::Create(params_, state_, WholeModelShardSpec(params_, state_), config);
  ASSERT_FALSE(shard.ok());
  EXPECT_EQ(shard.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(shard.status().message(), HasSubstr("needs the rmsprop optimizer"));
}

TEST_F(DelayCompensationTest, LambdaAndWorkersAreValidated) {
  const ShardSpec spec = WholeModelShardSpec(params_, state_);
  for (float lambda : {-0.01f, std::nanf(""), std::numeric_limits<float>::infinity()}) {
    ParameterShardConfig config = DcConfig(OptimizerKind::kSgd);
    config.dc_lambda = lambda;
    absl::StatusOr<std::unique_ptr<ParameterShard>> shard =
        ParameterShard::Create(params_, state_, spec, config);
    ASSERT_FALSE(shard.ok()) << lambda;
    EXPECT_EQ(shard.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(shard.status().message(), HasSubstr("dc_lambda must be finite and >= 0"));
  }
  ParameterShardConfig zero = DcConfig(OptimizerKind::kSgd);
  zero.dc_lambda = 0.0f;
  EXPECT_TRUE(ParameterShard::Create(params_, state_, spec, zero).ok());
  EXPECT_THAT(ParameterShard::Create(params_, state_, spec, zero, 0).status().message(),
              HasSubstr("at least 1"));
}

TEST_F(ParameterShardTest, CountWithoutUpdateTakesExamplesUpToPushesTimesTheLimit) {
  std::unique_ptr<ParameterShard> shard = MakeShard(TinyConfig(OptimizerKind::kSgd));
  ASSERT_TRUE(shard->CountWithoutUpdate(2, 2 * kMaxExamplesPerPush).ok());
  EXPECT_EQ(shard->version(), 2);
  EXPECT_EQ(shard->examples_seen(), 2 * kMaxExamplesPerPush);
  // One example beyond 2 pushes' limit, as CheckAggregate refuses it.
  const std::vector<float> g(shard->parameter_count(), 0.0f);
  EXPECT_FALSE(
      ShardUpdate::CheckAggregate(*shard, "x", 0, 2, 2, 2 * kMaxExamplesPerPush + 1, g, {}).ok());
  EXPECT_EQ(shard->CountWithoutUpdate(2, 2 * kMaxExamplesPerPush + 1).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(shard->CountWithoutUpdate(0, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(shard->CountWithoutUpdate(1, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(shard->version(), 2);
  EXPECT_EQ(shard->examples_seen(), 2 * kMaxExamplesPerPush);
}
}  // namespace
}  // namespace mobilenet
