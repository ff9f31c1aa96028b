#include "model/layers/fully_connected.h"

#include <vector>

#include "gtest/gtest.h"
#include "model/layers/compute_threads.h"
#include "model/layers/gradient_check.h"
#include "model/layers/random_tensor.h"

namespace mobilenet {
namespace {

TEST(FullyConnectedTest, ForwardByHand) {
  // input [1, 2] = {1, 2}; weights [2, 3]; bias [3].
  const std::vector<float> input = {1, 2};
  const std::vector<float> weights = {1, 2, 3, 4, 5, 6};
  const std::vector<float> bias = {0.5f, -1, 0};
  std::vector<float> output(3, 99.0f);
  FullyConnectedForward(1, 2, 3, input.data(), weights.data(), bias.data(), output.data());
  EXPECT_EQ(output, (std::vector<float>{9.5f, 11, 15}));
}

// The head of MobileNet-V1 at batch 64, on one and two threads.
TEST(FullyConnectedTest, MatchesReferenceAndAccumulates) {
  for (int threads : {1, 2}) {
    SetComputeThreads(threads);
    const int n = 64, din = 1024, dout = 1001;
    const auto input = RandomTensor(int64_t{n} * din, 1);
    const auto weights = RandomTensor(int64_t{din} * dout, 2, -0.1f, 0.1f);
    const auto bias = RandomTensor(dout, 3);
    const auto d_output = RandomTensor(int64_t{n} * dout, 4);
    std::vector<float> output(int64_t{n} * dout);
    FullyConnectedForward(n, din, dout, input.data(), weights.data(), bias.data(),
                          output.data());
    const auto initial_weights = RandomTensor(weights.size(), 5);
    const auto initial_bias = RandomTensor(dout, 6);
    std::vector<float> d_input(input.size()), d_weights = initial_weights, d_bias = initial_bias;
    FullyConnectedBackward(n, din, dout, input.data(), weights.data(), d_output.data(),
                           d_input.data(), d_weights.data(), d_bias.data());
    // Spot-check a spread of elements against double sums.
    for (int i = 0; i < n; i += 7) {
      for (int o = 0; o < dout; o += 13) {
        double sum = bias[o];
        for (int k = 0; k < din; ++k) sum += double{input[i * din + k]} * weights[k * dout + o];
        ASSERT_NEAR(output[i * dout + o], sum, 1e-4) << i << " " << o;
      }
      for (int k = 0; k < din; k += 11) {
        double sum = 0;
        for (int o = 0; o < dout; ++o) sum += double{d_output[i * dout + o]} * weights[k * dout + o];
        ASSERT_NEAR(d_input[i * din + k], sum, 1e-4) << i << " " << k;
      }
    }
    for (int k = 0; k < din; k += 17) {
      for (int o = 0; o < dout; o += 19) {
        double sum = initial_weights[k * dout + o];
        for (int i = 0; i < n; ++i) sum += double{input[i * din + k]} * d_output[i * dout + o];
        ASSERT_NEAR(d_weights[k * dout + o], sum, 1e-4) << k << " " << o;
      }
    }
    for (int o = 0; o < dout; ++o) {
      double sum = initial_bias[o];
      for (int i = 0; i < n; ++i) sum += d_output[i * dout + o];
      ASSERT_NEAR(d_bias[o], sum, 1e-4) << o;
    }
  }
  SetComputeThreads(1);
}

TEST(FullyConnectedTest, GradientMatchesFiniteDifferences) {
  const int n = 3, din = 4, dout = 5;
  auto input = RandomTensor(n * din, 7);
  auto weights = RandomTensor(din * dout, 8);
  auto bias = RandomTensor(dout, 9);
  const auto r = RandomTensor(n * dout, 10);
  const auto loss = [&] {
    std::vector<float> output(n * dout);
    FullyConnectedForward(n, din, dout, input.data(), weights.data(), bias.data(),
                          output.data());
    return WeightedSum(output, r);
  };
  std::vector<float> d_input(input.size()), d_weights(weights.size(), 0.0f), d_bias(dout, 0.0f);
  FullyConnectedBackward(n, din, dout, input.data(), weights.data(), r.data(), d_input.data(),
                         d_weights.data(), d_bias.data());
  ExpectGradientsMatch("d_input", input, d_input, loss);
  ExpectGradientsMatch("d_weights", weights, d_weights, loss);
  ExpectGradientsMatch("d_bias", bias, d_bias, loss);

  // Without d_input the parameter gradients still accumulate: now twice the value.
  const std::vector<float> once = d_weights;
  const std::vector<float> bias_once = d_bias;
  FullyConnectedBackward(n, din, dout, input.data(), weights.data(), r.data(), nullptr,
                         d_weights.data(), d_bias.data());
  for (size_t i = 0; i < once.size(); ++i) EXPECT_FLOAT_EQ(d_weights[i], 2 * once[i]);
  for (int o = 0; o < dout; ++o) EXPECT_FLOAT_EQ(d_bias[o], 2 * bias_once[o]);
}

}  // namespace
}  // namespace mobilenet
