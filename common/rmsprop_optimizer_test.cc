#include "common/rmsprop_optimizer.h"

#include <vector>

#include "gtest/gtest.h"

namespace mobilenet {
namespace {

TEST(RmsPropOptimizerTest, MatchesTensorFlowFormulaByHand) {
  // rho 0.9, momentum 0.9, epsilon 1, lr 0.1; ms starts at 1, mom at 0.
  // Element 0: w = 1, gradients 2, 2, -1.
  //   step 1: ms = 0.9*1 + 0.1*4 = 1.3;      sqrt(ms+1) = 1.516575
  //           mom = 0 + 0.1*2/1.516575 = 0.131876;              w = 0.868124
  //   step 2: ms = 0.9*1.3 + 0.4 = 1.57;     sqrt(2.57) = 1.603122
  //           mom = 0.9*0.131876 + 0.2/1.603122 = 0.243445;     w = 0.624679
  //   step 3: ms = 0.9*1.57 + 0.1 = 1.513;   sqrt(2.513) = 1.585244
  //           mom = 0.9*0.243445 - 0.1/1.585244 = 0.156019;     w = 0.468660
  // Element 1: w = -0.5, gradient 0.5 each step.
  //   step 1: ms = 0.9 + 0.025 = 0.925;      sqrt(1.925) = 1.387444
  //           mom = 0.05/1.387444 = 0.036037;                   w = -0.536037
  //   step 2: ms = 0.8325 + 0.025 = 0.8575;  sqrt(1.8575) = 1.362901
  //           mom = 0.9*0.036037 + 0.05/1.362901 = 0.069120;    w = -0.605158
  //   step 3: ms = 0.77175 + 0.025 = 0.79675; sqrt(1.79675) = 1.340429
  //           mom = 0.9*0.069120 + 0.05/1.340429 = 0.099510;    w = -0.704667
  RmsPropOptimizer rmsprop(2, /*rho=*/0.9f, /*momentum=*/0.9f, /*epsilon=*/1.0f);
  std::vector<float> weights = {1.0f, -0.5f};
  const float gradients[3][2] = {{2.0f, 0.5f}, {2.0f, 0.5f}, {-1.0f, 0.5f}};
  const float expected_ms[3][2] = {{1.3f, 0.925f}, {1.57f, 0.8575f}, {1.513f, 0.79675f}};
  const float expected_mom[3][2] = {
      {0.131876f, 0.036037f}, {0.243445f, 0.069120f}, {0.156019f, 0.099510f}};
  const float expected_w[3][2] = {
      {0.868124f, -0.536037f}, {0.624679f, -0.605158f}, {0.468660f, -0.704667f}};
  for (int step = 0; step < 3; ++step) {
    rmsprop.Apply(0.1f, 0, 2, gradients[step], weights.data());
    std::vector<OptimizerSlot> slots = rmsprop.slots();
    for (int i = 0; i < 2; ++i) {
      SCOPED_TRACE(testing::Message() << "step " << step + 1 << " element " << i);
      EXPECT_NEAR(slots[0].values[i], expected_ms[step][i], 1e-5);
      EXPECT_NEAR(slots[1].values[i], expected_mom[step][i], 1e-5);
      EXPECT_NEAR(weights[i], expected_w[step][i], 1e-5);
    }
  }
}

TEST(RmsPropOptimizerTest, ZeroGradientStillMovesByMomentumAndDecaysMs) {
  // After one step with g = 2 (mom 0.131876, see above), a zero gradient gives
  // ms = 0.9*1.3 = 1.17 and mom = 0.9*0.131876 = 0.118688.
  RmsPropOptimizer rmsprop(1, 0.9f, 0.9f, 1.0f);
  float w = 1.0f;
  const float g = 2.0f, zero = 0.0f;
  rmsprop.Apply(0.1f, 0, 1, &g, &w);
  rmsprop.Apply(0.1f, 0, 1, &zero, &w);
  EXPECT_NEAR(rmsprop.slots()[0].values[0], 1.17f, 1e-6);
  EXPECT_NEAR(rmsprop.slots()[1].values[0], 0.118688f, 1e-6);
  EXPECT_NEAR(w, 1.0f - 0.131876f - 0.118688f, 1e-5);
}

TEST(RmsPropOptimizerTest, TouchesOnlyTheGivenSubRange) {
  RmsPropOptimizer rmsprop(3, 0.9f, 0.9f, 1.0f);
  std::vector<float> weights = {1.0f, 1.0f, 1.0f};
  const std::vector<float> gradient = {2.0f, 2.0f, 2.0f};
  rmsprop.Apply(0.1f, 2, 3, gradient.data(), weights.data());
  EXPECT_EQ(weights[0], 1.0f);
  EXPECT_EQ(weights[1], 1.0f);
  EXPECT_NEAR(weights[2], 0.868124f, 1e-5);
  EXPECT_EQ(rmsprop.slots()[0].values[0], 1.0f);
  EXPECT_NEAR(rmsprop.slots()[0].values[2], 1.3f, 1e-6);
}

}  // namespace
}  // namespace mobilenet
