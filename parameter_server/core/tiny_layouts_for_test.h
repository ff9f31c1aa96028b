// Tests only: a tiny model's layouts for shard and client tests, small enough to check
// every value by hand.
#ifndef MOBILENET_PARAMETER_SERVER_CORE_TINY_LAYOUTS_FOR_TEST_H_
#define MOBILENET_PARAMETER_SERVER_CORE_TINY_LAYOUTS_FOR_TEST_H_

#include "model/parameter_layout.h"

namespace mobilenet {

// 17 trainable floats:
//   a/weights [0, 6)  a/BatchNorm/gamma [6, 9)  fc/weights [9, 15)  fc/biases [15, 17)
inline ParameterLayout TinyParameters() {
  ParameterLayout layout;
  layout.Add("a/weights", {1, 1, 2, 3}, TensorRole::kConvWeights);
  layout.Add("a/BatchNorm/gamma", {3}, TensorRole::kBatchNormGamma);
  layout.Add("fc/weights", {1, 1, 3, 2}, TensorRole::kFullyConnectedWeights);
  layout.Add("fc/biases", {2}, TensorRole::kFullyConnectedBias);
  return layout;
}

// 6 moving statistics: a/BatchNorm/moving_mean [0, 3)  a/BatchNorm/moving_variance [3, 6)
inline ParameterLayout TinyState() {
  ParameterLayout layout;
  layout.Add("a/BatchNorm/moving_mean", {3}, TensorRole::kMovingMean);
  layout.Add("a/BatchNorm/moving_variance", {3}, TensorRole::kMovingVariance);
  return layout;
}

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CORE_TINY_LAYOUTS_FOR_TEST_H_
