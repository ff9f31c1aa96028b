#include "model/initializer.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace mobilenet {
namespace {

ParameterLayout SmallLayout() {
  ParameterLayout layout;
  layout.Add("MobilenetV1/Conv2d_0/weights", {3, 3, 3, 32}, TensorRole::kConvWeights);
  layout.Add("MobilenetV1/Conv2d_0/BatchNorm/gamma", {32}, TensorRole::kBatchNormGamma);
  layout.Add("MobilenetV1/Conv2d_0/BatchNorm/beta", {32}, TensorRole::kBatchNormBeta);
  layout.Add("MobilenetV1/Conv2d_1_depthwise/depthwise_weights", {3, 3, 32, 1},
             TensorRole::kDepthwiseWeights);
  layout.Add("MobilenetV1/Conv2d_1_pointwise/weights", {1, 1, 32, 256},
             TensorRole::kConvWeights);
  layout.Add("MobilenetV1/Logits/Conv2d_1c_1x1/weights", {1, 1, 256, 1000},
             TensorRole::kFullyConnectedWeights);
  layout.Add("MobilenetV1/Logits/Conv2d_1c_1x1/biases", {1000},
             TensorRole::kFullyConnectedBias);
  layout.Add("MobilenetV1/Conv2d_0/BatchNorm/moving_mean", {32}, TensorRole::kMovingMean);
  layout.Add("MobilenetV1/Conv2d_0/BatchNorm/moving_variance", {32},
             TensorRole::kMovingVariance);
  return layout;
}

std::vector<float> InitAll(const ParameterLayout& layout, uint64_t seed) {
  std::vector<float> buffer(layout.total_size());
  InitializeAll(layout, seed, buffer.data());
  return buffer;
}

TEST(InitializerTest, AnySliceEqualsTheSameRangeOfTheWhole) {
  const ParameterLayout layout = SmallLayout();
  const std::vector<float> whole = InitAll(layout, 42);
  for (const TensorView& view : layout.views()) {
    for (int64_t begin : {int64_t{0}, int64_t{1}, view.size / 3, view.size - 1}) {
      for (int64_t end : {begin, begin + 1, view.size / 2 + 7, view.size}) {
        if (end < begin || end > view.size) continue;
        std::vector<float> slice(end - begin + 1, -123.0f);
        InitializeRange(view, 42, begin, end, slice.data());
        for (int64_t i = begin; i < end; ++i) {
          ASSERT_EQ(slice[i - begin], whole[view.offset + i])
              << view.name << " [" << begin << ", " << end << ") at " << i;
        }
        EXPECT_EQ(slice[end - begin], -123.0f) << "wrote past the end of " << view.name;
      }
    }
  }
}

TEST(InitializerTest, DeterministicPerSeedAndName) {
  const ParameterLayout layout = SmallLayout();
  EXPECT_EQ(InitAll(layout, 7), InitAll(layout, 7));
  const std::vector<float> a = InitAll(layout, 7);
  const std::vector<float> b = InitAll(layout, 8);
  const TensorView& w = layout.views()[0];
  int same = 0;
  for (int64_t i = 0; i < w.size; ++i) same += a[w.offset + i] == b[w.offset + i];
  EXPECT_LT(same, 3) << "seeds 7 and 8 gave the same weights";

  // Two tensors of the same shape and role but different names differ.
  ParameterLayout twins;
  twins.Add("p/weights", {64, 64}, TensorRole::kConvWeights);
  twins.Add("q/weights", {64, 64}, TensorRole::kConvWeights);
  const std::vector<float> t = InitAll(twins, 1);
  same = 0;
  for (int64_t i = 0; i < 64 * 64; ++i) same += t[i] == t[64 * 64 + i];
  EXPECT_LT(same, 3);
}

TEST(InitializerTest, ConstantsForBatchNormBiasesAndStatistics) {
  const ParameterLayout layout = SmallLayout();
  const std::vector<float> buffer = InitAll(layout, 3);
  for (const TensorView& view : layout.views()) {
    float expected;
    switch (view.role) {
      case TensorRole::kBatchNormGamma:
      case TensorRole::kMovingVariance:
        expected = 1.0f;
        break;
      case TensorRole::kBatchNormBeta:
      case TensorRole::kFullyConnectedBias:
      case TensorRole::kMovingMean:
        expected = 0.0f;
        break;
      default:
        continue;
    }
    for (int64_t i = 0; i < view.size; ++i) {
      ASSERT_EQ(buffer[view.offset + i], expected) << view.name << "[" << i << "]";
    }
  }
}

// Mean, standard deviation and range of the truncated normals.
TEST(InitializerTest, TruncatedNormalWithHeScaling) {
  struct Case {
    TensorView view;
    double fan_in;
    double gain;
  };
  auto make = [](std::vector<int64_t> shape, TensorRole role) {
    TensorView v;
    v.name = "t";
    v.shape = shape;
    v.size = 1;
    for (int64_t d : shape) v.size *= d;
    v.role = role;
    return v;
  };
  const Case cases[] = {
      {make({3, 3, 16, 512}, TensorRole::kConvWeights), 144, 2},
      {make({1, 1, 256, 400}, TensorRole::kConvWeights), 256, 2},
      {make({3, 3, 8192, 1}, TensorRole::kDepthwiseWeights), 9, 2},
      {make({1, 1, 128, 1000}, TensorRole::kFullyConnectedWeights), 128, 1},
  };
  for (const Case& c : cases) {
    std::vector<float> w(c.view.size);
    InitializeRange(c.view, 11, 0, c.view.size, w.data());
    double sum = 0, sum_sq = 0, max_abs = 0;
    for (float x : w) {
      sum += x;
      sum_sq += double{x} * x;
      max_abs = std::max(max_abs, std::fabs(double{x}));
    }
    const double n = static_cast<double>(w.size());
    const double mean = sum / n;
    const double stddev = std::sqrt(sum_sq / n - mean * mean);
    const double expected = std::sqrt(c.gain / c.fan_in);
    SCOPED_TRACE(TensorRoleName(c.view.role));
    EXPECT_NEAR(mean, 0.0, 0.02 * expected);
    EXPECT_NEAR(stddev, expected, 0.02 * expected);
    // Two sigma of the untruncated normal, which is expected / 0.8796.
    EXPECT_LE(max_abs, 2.0 * expected / 0.87962566 * (1 + 1e-6));
    EXPECT_GT(max_abs, 1.9 * expected / 0.87962566);
  }
}

}  // namespace
}  // namespace mobilenet
