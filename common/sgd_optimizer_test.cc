#include "common/sgd_optimizer.h"

#include <vector>

#include "gtest/gtest.h"

namespace mobilenet {
namespace {

TEST(SgdOptimizerTest, StepsAgainstTheGradient) {
  SgdOptimizer sgd(2);
  std::vector<float> weights = {1.0f, -2.0f};
  const std::vector<float> gradient = {0.5f, -4.0f};
  // w0 = 1 - 0.5 * 0.5 = 0.75;  w1 = -2 - 0.5 * (-4) = 0.
  sgd.Apply(0.5f, 0, 2, gradient.data(), weights.data());
  EXPECT_FLOAT_EQ(weights[0], 0.75f);
  EXPECT_FLOAT_EQ(weights[1], 0.0f);
  // Second step: w0 = 0.75 - 0.25 = 0.5.
  sgd.Apply(0.5f, 0, 2, gradient.data(), weights.data());
  EXPECT_FLOAT_EQ(weights[0], 0.5f);
  EXPECT_FLOAT_EQ(weights[1], 2.0f);
}

TEST(SgdOptimizerTest, TouchesOnlyTheGivenSubRange) {
  SgdOptimizer sgd(3);
  std::vector<float> weights = {1.0f, 1.0f, 1.0f};
  const std::vector<float> gradient = {1.0f, 1.0f, 1.0f};
  sgd.Apply(1.0f, 1, 2, gradient.data(), weights.data());
  EXPECT_EQ(weights, (std::vector<float>{1.0f, 0.0f, 1.0f}));
}

}  // namespace
}  // namespace mobilenet
