#include "common/optimizer.h"

#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

TEST(ParseOptimizerKindTest, AcceptsEveryKindName) {
  for (OptimizerKind kind :
       {OptimizerKind::kSgd, OptimizerKind::kMomentum, OptimizerKind::kRmsProp}) {
    absl::StatusOr<OptimizerKind> parsed = ParseOptimizerKind(OptimizerKindName(kind));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, kind);
  }
}

TEST(ParseOptimizerKindTest, RejectsUnknownNameListingTheChoices) {
  absl::StatusOr<OptimizerKind> parsed = ParseOptimizerKind("adam");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(parsed.status().message(), HasSubstr("\"adam\""));
  EXPECT_THAT(parsed.status().message(), HasSubstr("sgd, momentum, rmsprop"));
}

TEST(CreateOptimizerTest, CreatesTheRequestedKindWithItsSlots) {
  OptimizerConfig config;
  config.kind = OptimizerKind::kSgd;
  absl::StatusOr<std::unique_ptr<Optimizer>> sgd = CreateOptimizer(config, 5);
  ASSERT_TRUE(sgd.ok()) << sgd.status();
  EXPECT_EQ((*sgd)->kind(), OptimizerKind::kSgd);
  EXPECT_EQ((*sgd)->size(), 5);
  EXPECT_TRUE((*sgd)->slots().empty());

  config.kind = OptimizerKind::kMomentum;
  absl::StatusOr<std::unique_ptr<Optimizer>> momentum = CreateOptimizer(config, 5);
  ASSERT_TRUE(momentum.ok()) << momentum.status();
  std::vector<OptimizerSlot> slots = (*momentum)->slots();
  ASSERT_EQ(slots.size(), 1u);
  EXPECT_EQ(slots[0].name, "momentum");
  EXPECT_THAT(slots[0].values, ::testing::Each(0.0f));

  config.kind = OptimizerKind::kRmsProp;
  absl::StatusOr<std::unique_ptr<Optimizer>> rmsprop = CreateOptimizer(config, 5);
  ASSERT_TRUE(rmsprop.ok()) << rmsprop.status();
  slots = (*rmsprop)->slots();
  ASSERT_EQ(slots.size(), 2u);
  EXPECT_EQ(slots[0].name, "rms");
  EXPECT_EQ(slots[0].values.size(), 5u);
  EXPECT_THAT(slots[0].values, ::testing::Each(1.0f));
  EXPECT_EQ(slots[1].name, "momentum");
  EXPECT_THAT(slots[1].values, ::testing::Each(0.0f));
}

TEST(CreateOptimizerTest, RejectsOutOfRangeHyperParametersNamingThem) {
  OptimizerConfig config;
  config.kind = OptimizerKind::kMomentum;
  config.momentum = 1.0f;
  absl::StatusOr<std::unique_ptr<Optimizer>> created = CreateOptimizer(config, 1);
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(created.status().message(), HasSubstr("momentum"));

  config = OptimizerConfig();
  config.rmsprop_decay = -0.1f;
  created = CreateOptimizer(config, 1);
  ASSERT_FALSE(created.ok());
  EXPECT_THAT(created.status().message(), HasSubstr("rmsprop_decay"));

  config = OptimizerConfig();
  config.epsilon = 0.0f;
  created = CreateOptimizer(config, 1);
  ASSERT_FALSE(created.ok());
  EXPECT_THAT(created.status().message(), HasSubstr("epsilon"));

  created = CreateOptimizer(OptimizerConfig(), -1);
  ASSERT_FALSE(created.ok());
  EXPECT_THAT(created.status().message(), HasSubstr("size"));
}

TEST(CreateOptimizerTest, SgdIgnoresOtherRulesHyperParameters) {
  OptimizerConfig config;
  config.kind = OptimizerKind::kSgd;
  config.momentum = 5.0f;
  config.epsilon = -1.0f;
  EXPECT_TRUE(CreateOptimizer(config, 1).ok());
}

}  // namespace
}  // namespace mobilenet
