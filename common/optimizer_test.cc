#include "common/optimizer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/gradient_ops.h"

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


// The guarantees a parameter server builds its all-or-nothing apply on, for every rule:
// UpdateStaysFinite never clears an update that overflows, and FindNonFiniteUpdate
// predicts exactly what Apply produces, changing nothing itself.
class FiniteUpdateTest : public ::testing::TestWithParam<OptimizerKind> {
 protected:
  std::unique_ptr<Optimizer> Make(int64_t size) {
    OptimizerConfig config;
    config.kind = GetParam();
    absl::StatusOr<std::unique_ptr<Optimizer>> created = CreateOptimizer(config, size);
    EXPECT_TRUE(created.ok()) << created.status();
    return std::move(*created);
  }
  static std::vector<std::vector<float>> SlotValues(Optimizer& optimizer) {
    std::vector<std::vector<float>> values;
    for (const OptimizerSlot& slot : optimizer.slots()) {
      values.emplace_back(slot.values.begin(), slot.values.end());
    }
    return values;
  }
  static bool AllFinite(Optimizer& optimizer, const std::vector<float>& weights) {
    for (float w : weights) {
      if (!std::isfinite(w)) return false;
    }
    for (const OptimizerSlot& slot : optimizer.slots()) {
      for (float v : slot.values) {
        if (!std::isfinite(v)) return false;
      }
    }
    return true;
  }
};

TEST_P(FiniteUpdateTest, OrdinaryGradientsAreClearedByTheBounds) {
  std::unique_ptr<Optimizer> optimizer = Make(4);
  const std::vector<float> gradient = {0.5f, -2.0f, 0.0f, 1e-3f};
  std::vector<float> weights = {0.1f, -0.2f, 3.0f, 0.0f};
  EXPECT_TRUE(optimizer->UpdateStaysFinite(0.045f, 2.0f, 3.0f));
  EXPECT_FALSE(optimizer->FindNonFiniteUpdate(0.045f, gradient.data(), weights.data()));
  EXPECT_EQ(optimizer->Apply(0.045f, 0, 4, gradient.data(), weights.data()),
            *std::max_element(weights.begin(), weights.end(),
                              [](float a, float b) { return std::abs(a) < std::abs(b); }));
}

TEST_P(FiniteUpdateTest, AnOverflowingUpdateIsFoundWithoutChangingAnything) {
  std::unique_ptr<Optimizer> optimizer = Make(3);
  // Element 1 overflows every rule.
  const std::vector<float> gradient = {1.0f, 3e38f, -1.0f};
  const std::vector<float> weights = {0.5f, 0.5f, 0.5f};
  const std::vector<std::vector<float>> slots_before = SlotValues(*optimizer);
  EXPECT_FALSE(optimizer->UpdateStaysFinite(10.0f, 3e38f, 0.5f));
  std::optional<NonFiniteUpdate> found =
      optimizer->FindNonFiniteUpdate(10.0f, gradient.data(), weights.data());
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->index, 1);
  EXPECT_FALSE(std::isfinite(found->value));
  // RMSprop's mean square overflows first; the others' accumulation stays finite (3e38)
  // and the weight step (lr 10 times it) does not.
  EXPECT_EQ(found->what, GetParam() == OptimizerKind::kRmsProp ? "rms" : "weight");
  EXPECT_EQ(SlotValues(*optimizer), slots_before);
}

TEST_P(FiniteUpdateTest, TheBoundsAreSoundAndTheCheckIsExactOverRandomMagnitudes) {
  // Log-uniform magnitudes from 1e-3 to 1e38 in gradients, weights and learning rates:
  // whenever the bounds clear an update it stays finite, and the exact check predicts
  // Apply's outcome element for element.
  std::mt19937 random(GetParam() == OptimizerKind::kRmsProp ? 1 : 2);
  std::uniform_real_distribution<float> exponent(-3.0f, 38.0f), sign(-1.0f, 1.0f);
  const auto draw = [&]() {
    return std::pow(10.0f, exponent(random)) * (sign(random) < 0 ? -1.0f : 1.0f);
  };
  int cleared = 0, overflowed = 0;
  for (int trial = 0; trial < 400; ++trial) {
    std::unique_ptr<Optimizer> optimizer = Make(8);
    const int steps = 1 + trial % 3;
    for (int step = 0; step < steps; ++step) {
      std::vector<float> gradient(8), weights(8);
      for (float& g : gradient) g = trial % 2 ? draw() : draw() * 1e-30f;
      for (float& w : weights) w = trial % 5 ? draw() * 1e-35f : draw();
      const float lr = std::abs(draw()) * 1e-3f;
      const bool stays = optimizer->UpdateStaysFinite(lr, MaxAbs(gradient), MaxAbs(weights));
      const bool predicted_finite =
          !optimizer->FindNonFiniteUpdate(lr, gradient.data(), weights.data()).has_value();
      optimizer->Apply(lr, 0, 8, gradient.data(), weights.data());
      const bool finite = AllFinite(*optimizer, weights);
      ASSERT_EQ(predicted_finite, finite) << "trial " << trial << " step " << step;
      if (stays) {
        ASSERT_TRUE(finite) << "trial " << trial << ": the bounds cleared an overflow";
        ++cleared;
      }
      if (!finite) {
        ++overflowed;
        break;
      }
    }
  }
  // Both outcomes were exercised.
  EXPECT_GT(cleared, 20);
  EXPECT_GT(overflowed, 20);
}

TEST_P(FiniteUpdateTest, SlotsChangedRecomputesTheBounds) {
  std::unique_ptr<Optimizer> optimizer = Make(2);
  std::vector<OptimizerSlot> slots = optimizer->slots();
  if (slots.empty()) GTEST_SKIP() << "no slots";
  slots[0].values[1] = 1e37f;  // as a checkpoint restore would write it
  optimizer->SlotsChanged();
  EXPECT_FALSE(optimizer->UpdateStaysFinite(0.01f, 1.0f, 1.0f));
  slots[0].values[1] = 1.0f;
  optimizer->SlotsChanged();
  EXPECT_TRUE(optimizer->UpdateStaysFinite(0.01f, 1.0f, 1.0f));
}

INSTANTIATE_TEST_SUITE_P(EveryRule, FiniteUpdateTest,
                         ::testing::Values(OptimizerKind::kSgd, OptimizerKind::kMomentum,
                                           OptimizerKind::kRmsProp),
                         [](const ::testing::TestParamInfo<OptimizerKind>& info) {
                           return std::string(OptimizerKindName(info.param));
                         });

TEST(MaxAbsTest, IsTheLargestMagnitudeAndFlagsNonFiniteValues) {
  EXPECT_EQ(MaxAbs({}), 0.0f);
  EXPECT_EQ(MaxAbs({1.0f, -7.5f, 3.0f}), 7.5f);
  EXPECT_EQ(MaxAbs({1.0f, -std::numeric_limits<float>::infinity()}),
            std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(MaxAbs({std::numeric_limits<float>::infinity(), NAN, 1.0f})));
}

}  // namespace
}  // namespace mobilenet
