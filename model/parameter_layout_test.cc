#include "model/parameter_layout.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

TEST(ParameterLayoutTest, PacksTensorsBackToBack) {
  ParameterLayout layout;
  layout.Add("a/weights", {3, 3, 2, 4}, TensorRole::kConvWeights);
  layout.Add("a/BatchNorm/gamma", {4}, TensorRole::kBatchNormGamma);
  layout.Add("fc/biases", {10}, TensorRole::kFullyConnectedBias);
  ASSERT_EQ(layout.views().size(), 3u);
  EXPECT_EQ(layout.views()[0].offset, 0);
  EXPECT_EQ(layout.views()[0].size, 72);
  EXPECT_EQ(layout.views()[1].offset, 72);
  EXPECT_EQ(layout.views()[1].size, 4);
  EXPECT_EQ(layout.views()[2].offset, 76);
  EXPECT_EQ(layout.total_size(), 86);
  EXPECT_EQ(layout.views()[2].role, TensorRole::kFullyConnectedBias);
}

TEST(ParameterLayoutTest, FindsByNameOrSaysWhatIsMissing) {
  ParameterLayout layout;
  layout.Add("x", {2}, TensorRole::kBatchNormBeta);
  layout.Add("y", {5, 2}, TensorRole::kFullyConnectedWeights);
  absl::StatusOr<const TensorView*> y = layout.Find("y");
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ((*y)->offset, 2);
  EXPECT_EQ((*y)->shape, (std::vector<int64_t>{5, 2}));

  absl::StatusOr<const TensorView*> missing = layout.Find("z");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), ::testing::HasSubstr("\"z\""));
}

TEST(ParameterLayoutTest, RoleNamesAreDistinct) {
  EXPECT_STREQ(TensorRoleName(TensorRole::kDepthwiseWeights), "depthwise_weights");
  EXPECT_STRNE(TensorRoleName(TensorRole::kMovingMean),
               TensorRoleName(TensorRole::kMovingVariance));
}

TEST(ParameterLayoutDeathTest, DuplicateNameAborts) {
  ParameterLayout layout;
  layout.Add("x", {2}, TensorRole::kBatchNormBeta);
  EXPECT_DEATH(layout.Add("x", {3}, TensorRole::kBatchNormBeta), "duplicate tensor name x");
}

}  // namespace
}  // namespace mobilenet
