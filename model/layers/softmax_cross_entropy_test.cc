#include "model/layers/softmax_cross_entropy.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "model/layers/gradient_check.h"
#include "model/layers/random_tensor.h"

namespace mobilenet {
namespace {

// Logits {0, ln 3} give softmax {0.25, 0.75}.
const float kLn3 = std::log(3.0f);

TEST(SoftmaxCrossEntropyTest, TwoClassesByHand) {
  const std::vector<float> logits = {0, kLn3, 0, kLn3};
  const std::vector<int> labels = {1, 0};
  std::vector<float> d_logits(4);
  int correct = -1;
  const float loss = SoftmaxCrossEntropy(2, 2, logits.data(), labels.data(), 0.0f,
                                         d_logits.data(), &correct);
  EXPECT_NEAR(loss, (-std::log(0.75) - std::log(0.25)) / 2, 1e-6);
  // (softmax - one_hot) / N
  EXPECT_NEAR(d_logits[0], 0.25 / 2, 1e-6);
  EXPECT_NEAR(d_logits[1], -0.25 / 2, 1e-6);
  EXPECT_NEAR(d_logits[2], -0.75 / 2, 1e-6);
  EXPECT_NEAR(d_logits[3], 0.75 / 2, 1e-6);
  EXPECT_EQ(correct, 1);
}

TEST(SoftmaxCrossEntropyTest, LabelSmoothingByHand) {
  // s = 0.2, K = 2: target = 0.8 * one_hot + 0.1 = {0.1, 0.9} for label 1.
  const std::vector<float> logits = {0, kLn3};
  const std::vector<int> labels = {1};
  std::vector<float> d_logits(2);
  const float loss =
      SoftmaxCrossEntropy(1, 2, logits.data(), labels.data(), 0.2f, d_logits.data(), nullptr);
  EXPECT_NEAR(loss, -(0.1 * std::log(0.25) + 0.9 * std::log(0.75)), 1e-6);
  EXPECT_NEAR(d_logits[0], 0.25 - 0.1, 1e-6);
  EXPECT_NEAR(d_logits[1], 0.75 - 0.9, 1e-6);
}

TEST(SoftmaxCrossEntropyTest, StableForHugeLogits) {
  const std::vector<float> logits = {1000, 1000 + kLn3, -1000};
  const std::vector<int> labels = {0};
  std::vector<float> d_logits(3);
  int correct = -1;
  const float loss = SoftmaxCrossEntropy(1, 3, logits.data(), labels.data(), 0.0f,
                                         d_logits.data(), &correct);
  EXPECT_NEAR(loss, -std::log(0.25), 1e-4);
  EXPECT_NEAR(d_logits[0], 0.25 - 1, 1e-4);
  EXPECT_NEAR(d_logits[1], 0.75, 1e-4);
  EXPECT_NEAR(d_logits[2], 0.0, 1e-6);
  EXPECT_EQ(correct, 0);
}

TEST(SoftmaxCrossEntropyTest, GradientMatchesFiniteDifferences) {
  const int n = 4, k = 6;
  auto logits = RandomTensor(n * k, 1, -3, 3);
  const std::vector<int> labels = {0, 5, 2, 2};
  for (float smoothing : {0.0f, 0.1f}) {
    std::vector<float> d_logits(n * k);
    SoftmaxCrossEntropy(n, k, logits.data(), labels.data(), smoothing, d_logits.data(),
                        nullptr);
    const auto loss = [&] {
      return double{SoftmaxCrossEntropy(n, k, logits.data(), labels.data(), smoothing, nullptr,
                                        nullptr)};
    };
    ExpectGradientsMatch(smoothing == 0 ? "d_logits" : "d_logits smoothed", logits, d_logits,
                         loss, 1e-2);
  }
}

}  // namespace
}  // namespace mobilenet
