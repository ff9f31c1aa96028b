#include "model/layers/relu6.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "model/layers/compute_threads.h"
#include "model/layers/gradient_check.h"
#include "model/layers/random_tensor.h"

namespace mobilenet {
namespace {

TEST(Relu6Test, ForwardClampsToZeroAndSix) {
  const std::vector<float> x = {-3.0f, -0.0f, 0.0f, 0.5f, 5.99f, 6.0f, 6.01f, 100.0f};
  std::vector<float> y(x.size());
  Relu6Forward(x.size(), x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{0.0f, 0.0f, 0.0f, 0.5f, 5.99f, 6.0f, 6.0f, 6.0f}));
}

TEST(Relu6Test, BackwardPassesOnlyStrictlyInsideTheRange) {
  // Outputs at exactly 0 and 6 are clamped and pass no gradient.
  const std::vector<float> y = {0.0f, 1e-6f, 3.0f, 5.999f, 6.0f};
  const std::vector<float> d_y = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f};
  std::vector<float> d_x(y.size(), -1.0f);
  Relu6Backward(y.size(), y.data(), d_y.data(), d_x.data());
  EXPECT_EQ(d_x, (std::vector<float>{0.0f, 2.0f, 3.0f, 4.0f, 0.0f}));
}

TEST(Relu6Test, LargeTensorsInPlaceWithTwoThreads) {
  SetComputeThreads(2);
  const int64_t n = 300001;  // large enough for the parallel path, odd
  auto x = RandomTensor(n, 1, -4, 10);
  std::vector<float> expected(n), expected_grad(n);
  for (int64_t i = 0; i < n; ++i) expected[i] = std::fmin(std::fmax(x[i], 0.0f), 6.0f);
  Relu6Forward(n, x.data(), x.data());
  EXPECT_EQ(x, expected);

  auto d = RandomTensor(n, 2);
  for (int64_t i = 0; i < n; ++i) {
    expected_grad[i] = (x[i] > 0 && x[i] < 6) ? d[i] : 0.0f;
  }
  Relu6Backward(n, x.data(), d.data(), d.data());
  EXPECT_EQ(d, expected_grad);
  SetComputeThreads(1);
}

TEST(Relu6Test, GradientMatchesFiniteDifferencesAwayFromKinks) {
  auto x = RandomTensor(50, 3, -3, 9);
  for (float& v : x) {
    if (std::fabs(v) < 0.05f || std::fabs(v - 6) < 0.05f) v += 0.2f;
  }
  const auto r = RandomTensor(50, 4);
  const auto loss = [&] {
    std::vector<float> y(x.size());
    Relu6Forward(x.size(), x.data(), y.data());
    return WeightedSum(y, r);
  };
  std::vector<float> y(x.size()), d_x(x.size());
  Relu6Forward(x.size(), x.data(), y.data());
  Relu6Backward(x.size(), y.data(), r.data(), d_x.data());
  ExpectGradientsMatch("d_x", x, d_x, loss, 1e-2);
}

}  // namespace
}  // namespace mobilenet
