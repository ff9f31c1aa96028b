#include "common/momentum_optimizer.h"

#include <vector>

#include "gtest/gtest.h"

namespace mobilenet {
namespace {

TEST(MomentumOptimizerTest, MatchesHandComputedSteps) {
  // momentum 0.9, lr 0.1, w = 1, g = 1 each step:
  //   step 1: accum = 0.9*0 + 1 = 1;       w = 1 - 0.1*1 = 0.9
  //   step 2: accum = 0.9*1 + 1 = 1.9;     w = 0.9 - 0.19 = 0.71
  //   step 3: accum = 0.9*1.9 + 1 = 2.71;  w = 0.71 - 0.271 = 0.439
  MomentumOptimizer momentum(1, 0.9f);
  float w = 1.0f;
  const float g = 1.0f;
  const float expected_w[] = {0.9f, 0.71f, 0.439f};
  const float expected_accum[] = {1.0f, 1.9f, 2.71f};
  for (int step = 0; step < 3; ++step) {
    momentum.Apply(0.1f, 0, 1, &g, &w);
    EXPECT_NEAR(w, expected_w[step], 1e-6) << "step " << step + 1;
    EXPECT_NEAR(momentum.slots()[0].values[0], expected_accum[step], 1e-6) << "step " << step + 1;
  }
}

TEST(MomentumOptimizerTest, SubRangesAreIndependent) {
  MomentumOptimizer momentum(2, 0.5f);
  std::vector<float> weights = {0.0f, 0.0f};
  const std::vector<float> gradient = {1.0f, 1.0f};
  // Element 0 gets two steps (accum 1 then 1.5), element 1 one step (accum 1).
  momentum.Apply(1.0f, 0, 1, gradient.data(), weights.data());
  momentum.Apply(1.0f, 0, 2, gradient.data(), weights.data());
  EXPECT_FLOAT_EQ(weights[0], -2.5f);
  EXPECT_FLOAT_EQ(weights[1], -1.0f);
  EXPECT_FLOAT_EQ(momentum.slots()[0].values[0], 1.5f);
  EXPECT_FLOAT_EQ(momentum.slots()[0].values[1], 1.0f);
}

TEST(MomentumOptimizerTest, RestoredSlotIsUsed) {
  MomentumOptimizer momentum(1, 0.5f);
  momentum.slots()[0].values[0] = 2.0f;
  float w = 0.0f;
  const float g = 1.0f;
  // accum = 0.5*2 + 1 = 2; w = -1 * 2.
  momentum.Apply(1.0f, 0, 1, &g, &w);
  EXPECT_FLOAT_EQ(w, -2.0f);
}

}  // namespace
}  // namespace mobilenet
