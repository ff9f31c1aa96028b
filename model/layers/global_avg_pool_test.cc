#include "model/layers/global_avg_pool.h"

#include <vector>

#include "gtest/gtest.h"
#include "model/layers/compute_threads.h"
#include "model/layers/gradient_check.h"
#include "model/layers/random_tensor.h"

namespace mobilenet {
namespace {

TEST(GlobalAvgPoolTest, ForwardAveragesEachChannel) {
  // N=1, H=1, W=2, C=3.
  const std::vector<float> input = {1, 2, 3, 5, 6, 7};
  std::vector<float> output(3);
  GlobalAvgPoolForward(1, 1, 2, 3, input.data(), output.data());
  EXPECT_EQ(output, (std::vector<float>{3, 4, 5}));
}

TEST(GlobalAvgPoolTest, ForwardMatchesReferenceWithTwoThreads) {
  SetComputeThreads(2);
  const int n = 5, h = 7, w = 7, c = 40;
  const auto input = RandomTensor(int64_t{n} * h * w * c, 1);
  std::vector<float> output(n * c);
  GlobalAvgPoolForward(n, h, w, c, input.data(), output.data());
  for (int b = 0; b < n; ++b) {
    for (int ch = 0; ch < c; ++ch) {
      double sum = 0;
      for (int p = 0; p < h * w; ++p) sum += input[(int64_t{b} * h * w + p) * c + ch];
      ASSERT_NEAR(output[b * c + ch], sum / (h * w), 1e-6) << b << " " << ch;
    }
  }
  SetComputeThreads(1);
}

TEST(GlobalAvgPoolTest, BackwardBroadcastsScaledGradient) {
  const std::vector<float> d_output = {4, 8};  // N=1, C=2
  std::vector<float> d_input(1 * 2 * 2 * 2, -1.0f);
  GlobalAvgPoolBackward(1, 2, 2, 2, d_output.data(), d_input.data());
  EXPECT_EQ(d_input, (std::vector<float>{1, 2, 1, 2, 1, 2, 1, 2}));
}

TEST(GlobalAvgPoolTest, GradientMatchesFiniteDifferences) {
  const int n = 2, h = 3, w = 2, c = 4;
  auto input = RandomTensor(int64_t{n} * h * w * c, 2);
  const auto r = RandomTensor(n * c, 3);
  const auto loss = [&] {
    std::vector<float> output(n * c);
    GlobalAvgPoolForward(n, h, w, c, input.data(), output.data());
    return WeightedSum(output, r);
  };
  std::vector<float> d_input(input.size());
  GlobalAvgPoolBackward(n, h, w, c, r.data(), d_input.data());
  ExpectGradientsMatch("d_input", input, d_input, loss);
}

}  // namespace
}  // namespace mobilenet
