#include "parameter_server/core/sharding_plan.h"

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/mobilenet_v1.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

MobileNetConfig ImageNetConfig(float alpha) {
  MobileNetConfig config;
  config.alpha = alpha;
  return config;
}

MobileNetConfig MnistConfig() {
  MobileNetConfig config;
  config.alpha = 1.0f;
  config.resolution = 28;
  config.input_channels = 1;
  config.num_classes = 10;
  return config;
}

ShardingPlan MakePlan(const MobileNetConfig& config, int num_shards) {
  absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(config, num_shards);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *std::move(plan);
}

// Marks every element the plan's slices of `layout` hold; fails on any element held
// twice or never.
void ExpectExactCover(const ParameterLayout& layout, const ShardingPlan& plan, bool state) {
  std::vector<int> held(layout.total_size(), 0);
  for (const ShardSpec& spec : plan.shards()) {
    for (const TensorSlice& slice : state ? spec.state : spec.parameters) {
      absl::StatusOr<const TensorView*> view = layout.Find(slice.tensor);
      ASSERT_TRUE(view.ok()) << view.status();
      ASSERT_GE(slice.begin, 0);
      ASSERT_LT(slice.begin, slice.end) << slice.tensor;
      ASSERT_LE(slice.end, (*view)->size) << slice.tensor;
      for (int64_t i = slice.begin; i < slice.end; ++i) ++held[(*view)->offset + i];
    }
  }
  for (int64_t i = 0; i < layout.total_size(); ++i) {
    ASSERT_EQ(held[i], 1) << (state ? "state" : "parameter") << " element " << i;
  }
}

int64_t CountedBytes(const ShardingPlan& plan, int shard) {
  int64_t floats = 0;
  for (const TensorSlice& slice : plan.shard(shard).parameters) floats += slice.size();
  for (const TensorSlice& slice : plan.shard(shard).state) floats += slice.size();
  return floats * 4;
}

class BalanceTest : public ::testing::TestWithParam<MobileNetConfig> {};

TEST_P(BalanceTest, EveryServerWithinFivePercentOfTheMeanAndEveryElementOnce) {
  const MobileNetConfig config = GetParam();
  absl::StatusOr<Architecture> arch = BuildArchitecture(config);
  ASSERT_TRUE(arch.ok());
  const ParameterLayout parameters = BuildParameterLayout(*arch);
  const ParameterLayout state = BuildStateLayout(*arch);
  const int64_t total_bytes = (parameters.total_size() + state.total_size()) * 4;
  for (int n = 2; n <= 8; ++n) {
    SCOPED_TRACE(testing::Message() << ModelConfigString(config) << ", " << n << " servers");
    const ShardingPlan plan = MakePlan(config, n);
    ASSERT_EQ(plan.num_shards(), n);
    ExpectExactCover(parameters, plan, /*state=*/false);
    ExpectExactCover(state, plan, /*state=*/true);
    const double mean = static_cast<double>(total_bytes) / n;
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(plan.shard_bytes(i), CountedBytes(plan, i));
      EXPECT_LE(std::abs(plan.shard_bytes(i) - mean), 0.05 * mean)
          << "server " << i << " holds " << plan.shard_bytes(i) << " bytes, mean " << mean;
      // Every server can be created: it holds at least one trainable slice.
      EXPECT_FALSE(plan.shard(i).parameters.empty());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, BalanceTest,
                         ::testing::Values(ImageNetConfig(1.0f), ImageNetConfig(0.5f),
                                           MnistConfig()));

TEST(ShardingPlanTest, SplitsTensorsAboveTheThresholdOnly) {
  const ShardingPlan plan = MakePlan(ImageNetConfig(1.0f), 4);
  // The largest pointwise weights (1024 x 1024) are far above the threshold.
  int slices_of_largest = 0;
  for (const ShardSpec& spec : plan.shards()) {
    for (const TensorSlice& slice : spec.parameters) {
      if (slice.tensor == "MobilenetV1/Conv2d_13_pointwise/weights") ++slices_of_largest;
      if (slice.tensor == "MobilenetV1/Conv2d_0/BatchNorm/gamma") {
        EXPECT_EQ(slice.begin, 0);
        EXPECT_EQ(slice.end, 32);  // small tensors stay whole
      }
    }
  }
  EXPECT_GT(slices_of_largest, 1);
}

TEST(ShardingPlanTest, SlicesAreInLayoutOrderWithinEachServer) {
  const ShardingPlan plan = MakePlan(ImageNetConfig(1.0f), 3);
  for (const ShardSpec& spec : plan.shards()) {
    int64_t last = -1;
    for (const TensorSlice& slice : spec.parameters) {
      absl::StatusOr<const TensorView*> view = plan.parameter_layout().Find(slice.tensor);
      ASSERT_TRUE(view.ok());
      EXPECT_GT((*view)->offset + slice.begin, last);
      last = (*view)->offset + slice.begin;
    }
  }
}

TEST(ShardingPlanTest, OneServerHoldsTheWholeModelInLayoutOrder) {
  const ShardingPlan plan = MakePlan(MnistConfig(), 1);
  const ShardSpec whole = WholeModelShardSpec(plan.parameter_layout(), plan.state_layout());
  ASSERT_EQ(plan.shard(0).parameters.size(), whole.parameters.size());
  for (size_t i = 0; i < whole.parameters.size(); ++i) {
    EXPECT_EQ(plan.shard(0).parameters[i].tensor, whole.parameters[i].tensor);
    EXPECT_EQ(plan.shard(0).parameters[i].size(), whole.parameters[i].size());
  }
  EXPECT_EQ(plan.shard(0).state.size(), whole.state.size());
}

TEST(ShardingPlanTest, DeterministicAndFingerprintStable) {
  const ShardingPlan a = MakePlan(ImageNetConfig(1.0f), 5);
  const ShardingPlan b = MakePlan(ImageNetConfig(1.0f), 5);
  EXPECT_EQ(a.fingerprint(), b.fingerprint());
  ASSERT_EQ(a.num_shards(), b.num_shards());
  for (int i = 0; i < a.num_shards(); ++i) {
    ASSERT_EQ(a.shard(i).parameters.size(), b.shard(i).parameters.size());
    for (size_t j = 0; j < a.shard(i).parameters.size(); ++j) {
      EXPECT_EQ(a.shard(i).parameters[j].tensor, b.shard(i).parameters[j].tensor);
      EXPECT_EQ(a.shard(i).parameters[j].begin, b.shard(i).parameters[j].begin);
    }
  }
  // A pinned value: the fingerprint must not change between builds or machines (FNV-1a
  // over a canonical text, no std::hash). Update deliberately if the plan changes.
  EXPECT_EQ(FormatFingerprint(MakePlan(MnistConfig(), 2).fingerprint()), "ddd2225b5a44dccb");
}

TEST(ShardingPlanTest, FingerprintDiffersForAnotherModelOrServerCount) {
  std::set<uint64_t> fingerprints;
  for (int n = 1; n <= 4; ++n) {
    fingerprints.insert(MakePlan(ImageNetConfig(1.0f), n).fingerprint());
    fingerprints.insert(MakePlan(ImageNetConfig(0.5f), n).fingerprint());
    fingerprints.insert(MakePlan(MnistConfig(), n).fingerprint());
  }
  EXPECT_EQ(fingerprints.size(), 12u);
}

TEST(ShardingPlanTest, RejectsBadServerCounts) {
  for (int n : {0, -1, 1025}) {
    absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(MnistConfig(), n);
    ASSERT_FALSE(plan.ok());
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(plan.status().message(), HasSubstr("number of parameter servers"));
  }
  MobileNetConfig bad = MnistConfig();
  bad.alpha = -1;
  EXPECT_EQ(ShardingPlan::Create(bad, 2).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ModelConfigStringTest, RoundTrips) {
  MobileNetConfig config = ImageNetConfig(0.75f);
  config.shallow = true;
  EXPECT_EQ(ModelConfigString(ImageNetConfig(1.0f)),
            "alpha=1 resolution=224 channels=3 classes=1000");
  EXPECT_EQ(ModelConfigString(config), "alpha=0.75 resolution=224 channels=3 classes=1000 shallow");
  absl::StatusOr<MobileNetConfig> parsed = ParseModelConfigString(ModelConfigString(config));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->alpha, 0.75f);
  EXPECT_EQ(parsed->resolution, 224);
  EXPECT_EQ(parsed->input_channels, 3);
  EXPECT_EQ(parsed->num_classes, 1000);
  EXPECT_TRUE(parsed->shallow);
  absl::StatusOr<MobileNetConfig> bad = ParseModelConfigString("alpha=1 resolution=x");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("alpha=1 resolution=x"));
}

TEST(FormatFingerprintTest, SixteenHexDigits) {
  EXPECT_EQ(FormatFingerprint(0xabcull), "0000000000000abc");
}

}  // namespace
}  // namespace mobilenet
