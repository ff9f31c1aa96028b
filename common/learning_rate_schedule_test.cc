#include "common/learning_rate_schedule.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

LearningRateScheduleConfig HalvingEveryTwoEpochsOf100() {
  LearningRateScheduleConfig config;
  config.initial_learning_rate = 0.1f;
  config.decay_factor = 0.5f;
  config.epochs_per_decay = 2.0f;
  config.examples_per_epoch = 100;  // one decay every 200 examples
  return config;
}

TEST(LearningRateScheduleTest, StaircaseDecaysAtWholeDecayPeriods) {
  absl::StatusOr<LearningRateSchedule> schedule =
      LearningRateSchedule::Create(HalvingEveryTwoEpochsOf100());
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  EXPECT_FLOAT_EQ(schedule->LearningRate(0), 0.1f);
  EXPECT_FLOAT_EQ(schedule->LearningRate(199), 0.1f);    // floor(0.995) = 0
  EXPECT_FLOAT_EQ(schedule->LearningRate(200), 0.05f);   // floor(1) = 1
  EXPECT_FLOAT_EQ(schedule->LearningRate(450), 0.025f);  // floor(2.25) = 2
  EXPECT_FLOAT_EQ(schedule->LearningRate(-5), 0.1f);
}

TEST(LearningRateScheduleTest, SmoothDecayUsesTheFractionalExponent) {
  LearningRateScheduleConfig config = HalvingEveryTwoEpochsOf100();
  config.staircase = false;
  absl::StatusOr<LearningRateSchedule> schedule = LearningRateSchedule::Create(config);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  // 0.1 * 0.5^0.5 = 0.0707107;  0.1 * 0.5^1.5 = 0.0353553.
  EXPECT_NEAR(schedule->LearningRate(100), 0.0707107f, 1e-7);
  EXPECT_NEAR(schedule->LearningRate(300), 0.0353553f, 1e-7);
}

TEST(LearningRateScheduleTest, DefaultsDecayBy094EveryTwoEpochs) {
  LearningRateScheduleConfig config;
  config.examples_per_epoch = 1000;
  absl::StatusOr<LearningRateSchedule> schedule = LearningRateSchedule::Create(config);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  // Four epochs = two decays: 0.045 * 0.94^2 = 0.039762.
  EXPECT_NEAR(schedule->LearningRate(4000), 0.039762f, 1e-6);
  EXPECT_NEAR(schedule->LearningRate(3999), 0.045f * 0.94f, 1e-6);
}

TEST(LearningRateScheduleTest, ConstantWhenFactorIsOne) {
  LearningRateScheduleConfig config = HalvingEveryTwoEpochsOf100();
  config.decay_factor = 1.0f;
  absl::StatusOr<LearningRateSchedule> schedule = LearningRateSchedule::Create(config);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  EXPECT_FLOAT_EQ(schedule->LearningRate(1000000), 0.1f);
}

LearningRateScheduleConfig CosineOverFourEpochsOf100() {
  LearningRateScheduleConfig config;
  config.initial_learning_rate = 0.1f;
  config.decay = LearningRateDecay::kCosine;
  config.cosine_epochs = 4.0f;
  config.examples_per_epoch = 100;
  return config;
}

TEST(LearningRateScheduleTest, CosineFallsFromInitialToZeroAtItsLength) {
  absl::StatusOr<LearningRateSchedule> schedule =
      LearningRateSchedule::Create(CosineOverFourEpochsOf100());
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  EXPECT_FLOAT_EQ(schedule->LearningRate(0), 0.1f);
  // 1 epoch of 4: 0.1 * (1 + cos(pi / 4)) / 2 = 0.0853553.
  EXPECT_NEAR(schedule->LearningRate(100), 0.0853553f, 1e-7);
  EXPECT_NEAR(schedule->LearningRate(200), 0.05f, 1e-7);  // half way
  // 3 epochs: 0.1 * (1 - cos(pi / 4)) / 2 = 0.0146447.
  EXPECT_NEAR(schedule->LearningRate(300), 0.0146447f, 1e-7);
  EXPECT_NEAR(schedule->LearningRate(400), 0.0f, 1e-9);
  EXPECT_NEAR(schedule->LearningRate(1000), 0.0f, 1e-9);  // stays at 0 past the length
}

TEST(LearningRateScheduleTest, WarmUpRampsLinearlyThenLeavesTheScheduleAsItWas) {
  LearningRateScheduleConfig config = CosineOverFourEpochsOf100();
  config.warmup_epochs = 0.5f;  // 50 examples
  absl::StatusOr<LearningRateSchedule> schedule = LearningRateSchedule::Create(config);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  // Example 0 gets 1/50 of the rate, example 24 25/50 (times the cosine, ~1 that early).
  EXPECT_NEAR(schedule->LearningRate(0), 0.1f * (1.0f / 50), 1e-6);
  EXPECT_NEAR(schedule->LearningRate(24), (25.0 / 50) * 0.1 * 0.5 * (1 + std::cos(M_PI * 0.24 / 4)),
              1e-6);
  // From example 49 on, the warm-up factor is 1: the cosine's own value.
  EXPECT_NEAR(schedule->LearningRate(200), 0.05f, 1e-7);

  LearningRateScheduleConfig exponential = HalvingEveryTwoEpochsOf100();
  exponential.warmup_epochs = 1.0f;
  schedule = LearningRateSchedule::Create(exponential);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  EXPECT_NEAR(schedule->LearningRate(49), 0.05f, 1e-7);
  EXPECT_FLOAT_EQ(schedule->LearningRate(200), 0.05f);
}

TEST(LearningRateScheduleTest, DescribesItselfForLogs) {
  LearningRateScheduleConfig cosine = CosineOverFourEpochsOf100();
  cosine.warmup_epochs = 0.5f;
  EXPECT_EQ(LearningRateSchedule::Create(cosine)->Describe(),
            "0.1, cosine to 0 over 4 epochs, warm-up 0.5 epochs");
  EXPECT_EQ(LearningRateSchedule::Create(HalvingEveryTwoEpochsOf100())->Describe(),
            "0.1, x0.5 every 2 epochs (staircase)");
}

TEST(LearningRateScheduleTest, ParsesTheDecayNames) {
  EXPECT_EQ(*ParseLearningRateDecay("exponential"), LearningRateDecay::kExponential);
  EXPECT_EQ(*ParseLearningRateDecay("cosine"), LearningRateDecay::kCosine);
  absl::StatusOr<LearningRateDecay> bad = ParseLearningRateDecay("linear");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("exponential, cosine"));
}

TEST(LearningRateScheduleTest, RejectsInvalidConfigNamingTheField) {
  struct Case {
    void (*mutate)(LearningRateScheduleConfig&);
    const char* field;
  };
  const Case cases[] = {
      {[](LearningRateScheduleConfig& c) { c.initial_learning_rate = 0; }, "initial"},
      {[](LearningRateScheduleConfig& c) { c.decay_factor = 1.5f; }, "decay factor"},
      {[](LearningRateScheduleConfig& c) { c.decay_factor = 0; }, "decay factor"},
      {[](LearningRateScheduleConfig& c) { c.epochs_per_decay = -2; }, "epochs per"},
      {[](LearningRateScheduleConfig& c) { c.examples_per_epoch = 0; }, "examples per epoch"},
      {[](LearningRateScheduleConfig& c) { c.warmup_epochs = -1; }, "warm-up"},
      {[](LearningRateScheduleConfig& c) { c.warmup_epochs = NAN; }, "warm-up"},
      {[](LearningRateScheduleConfig& c) {
         c.decay = LearningRateDecay::kCosine;
         c.cosine_epochs = 0;
       },
       "cosine decay needs its length"},
  };
  for (const Case& c : cases) {
    LearningRateScheduleConfig config = HalvingEveryTwoEpochsOf100();
    c.mutate(config);
    absl::StatusOr<LearningRateSchedule> schedule = LearningRateSchedule::Create(config);
    ASSERT_FALSE(schedule.ok()) << c.field;
    EXPECT_EQ(schedule.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(schedule.status().message(), HasSubstr(c.field));
  }
}

}  // namespace
}  // namespace mobilenet
