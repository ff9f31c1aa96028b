#include "worker/weight_decay.h"

#include <vector>

#include "gtest/gtest.h"

namespace mobilenet {
namespace {

TEST(WeightDecayTest, OnlyConvAndClassifierWeightsTakeDecay) {
  EXPECT_TRUE(TakesWeightDecay(TensorRole::kConvWeights));
  EXPECT_TRUE(TakesWeightDecay(TensorRole::kFullyConnectedWeights));
  EXPECT_FALSE(TakesWeightDecay(TensorRole::kDepthwiseWeights));
  EXPECT_FALSE(TakesWeightDecay(TensorRole::kBatchNormGamma));
  EXPECT_FALSE(TakesWeightDecay(TensorRole::kBatchNormBeta));
  EXPECT_FALSE(TakesWeightDecay(TensorRole::kFullyConnectedBias));
  EXPECT_FALSE(TakesWeightDecay(TensorRole::kMovingMean));
  EXPECT_FALSE(TakesWeightDecay(TensorRole::kMovingVariance));
}

TEST(WeightDecayTest, RangesCoverTheDecayedTensors) {
  ParameterLayout layout;
  layout.Add("conv/weights", {2, 3}, TensorRole::kConvWeights);            // [0, 6)
  layout.Add("conv/BatchNorm/gamma", {3}, TensorRole::kBatchNormGamma);    // [6, 9)
  layout.Add("dw/depthwise_weights", {4}, TensorRole::kDepthwiseWeights);  // [9, 13)
  layout.Add("fc/weights", {3, 2}, TensorRole::kFullyConnectedWeights);    // [13, 19)
  layout.Add("fc/biases", {2}, TensorRole::kFullyConnectedBias);           // [19, 21)
  const std::vector<IndexRange> ranges = WeightDecayRanges(layout);
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0].begin, 0);
  EXPECT_EQ(ranges[0].end, 6);
  EXPECT_EQ(ranges[1].begin, 13);
  EXPECT_EQ(ranges[1].end, 19);

  // Used with AddWeightDecay: only those ranges change.
  std::vector<float> weights(layout.total_size(), 2.0f);
  std::vector<float> gradients(layout.total_size(), 0.0f);
  AddWeightDecay(0.5f, ranges, weights, absl::MakeSpan(gradients));
  for (int64_t i = 0; i < layout.total_size(); ++i) {
    const bool decayed = i < 6 || (i >= 13 && i < 19);
    EXPECT_EQ(gradients[i], decayed ? 1.0f : 0.0f) << "index " << i;
  }
}

}  // namespace
}  // namespace mobilenet
