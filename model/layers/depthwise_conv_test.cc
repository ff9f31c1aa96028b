#include "model/layers/depthwise_conv.h"

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "model/layers/compute_threads.h"
#include "model/layers/gradient_check.h"
#include "model/layers/layer_benchmark.h"
#include "model/layers/random_tensor.h"

namespace mobilenet {
namespace {

// |a - b| <= tolerance * (1 + |b|) everywhere.
void ExpectClose(const std::string& what, const std::vector<float>& a, const std::vector<float>& b,
                 float tolerance = 1e-5f) {
  ASSERT_EQ(a.size(), b.size()) << what;
  int failures = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!(std::fabs(a[i] - b[i]) <= tolerance * (1 + std::fabs(b[i]))) && ++failures <= 5) {
      ADD_FAILURE() << what << "[" << i << "]: " << a[i] << " vs reference " << b[i];
    }
  }
  EXPECT_EQ(failures, 0) << what;
}

struct Shape {
  int batch, h, w, channels, stride;
};

std::string Name(const Shape& s) {
  return absl::StrCat("batch ", s.batch, " ", s.h, "x", s.w, "x", s.channels, " stride ", s.stride);
}

ConvGeometry Geometry(const Shape& s) {
  return ConvGeometry::Same(s.batch, s.h, s.w, s.channels, s.channels, 3, s.stride);
}

// Odd and even sizes, H != W, 1x1 and 2x2 images, channel counts that exercise the
// 16-wide, 8-wide and single-channel paths.
const Shape kShapes[] = {{2, 7, 9, 3, 1},    {2, 7, 9, 13, 2},  {1, 5, 5, 32, 1}, {3, 6, 4, 32, 2},
                         {2, 1, 1, 16, 1},   {2, 1, 1, 24, 2},  {1, 2, 3, 24, 2}, {2, 2, 2, 40, 1},
                         {2, 12, 11, 40, 1}, {1, 9, 9, 19, 2},  {1, 8, 10, 8, 2}, {2, 3, 3, 64, 1},
                         {1, 4, 4, 256, 1},  {1, 14, 13, 29, 2}};

class DepthwiseConvTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { SetComputeThreads(GetParam()); }
  void TearDown() override { SetComputeThreads(1); }
};

TEST_P(DepthwiseConvTest, ForwardMatchesNaive) {
  for (const Shape& s : kShapes) {
    const ConvGeometry g = Geometry(s);
    const std::vector<float> input = RandomTensor(g.input_size(), 1);
    const std::vector<float> filter = RandomTensor(9 * s.channels, 2);
    std::vector<float> fast(g.output_size(), NAN), naive(g.output_size(), NAN);
    DepthwiseConvForward(g, input.data(), filter.data(), fast.data());
    DepthwiseConvForwardNaive(g, input.data(), filter.data(), naive.data());
    ExpectClose("output, " + Name(s), fast, naive);
  }
}

TEST_P(DepthwiseConvTest, BackwardMatchesNaive) {
  for (const Shape& s : kShapes) {
    const ConvGeometry g = Geometry(s);
    const std::vector<float> input = RandomTensor(g.input_size(), 3);
    const std::vector<float> filter = RandomTensor(9 * s.channels, 4);
    const std::vector<float> d_output = RandomTensor(g.output_size(), 5);
    // d_filter starts non-zero to check that it is accumulated; d_input starts as NaN to
    // check that every element is overwritten.
    const std::vector<float> d_filter_start = RandomTensor(9 * s.channels, 6);
    std::vector<float> d_input(g.input_size(), NAN), d_input_naive(g.input_size(), NAN);
    std::vector<float> d_filter = d_filter_start, d_filter_naive = d_filter_start;
    DepthwiseConvBackward(g, input.data(), filter.data(), d_output.data(), d_input.data(),
                          d_filter.data());
    DepthwiseConvBackwardNaive(g, input.data(), filter.data(), d_output.data(),
                               d_input_naive.data(), d_filter_naive.data());
    ExpectClose("d_input, " + Name(s), d_input, d_input_naive);
    ExpectClose("d_filter, " + Name(s), d_filter, d_filter_naive, 2e-5f);

    // Without d_input the filter gradient is the same.
    std::vector<float> d_filter_only = d_filter_start;
    DepthwiseConvBackward(g, input.data(), filter.data(), d_output.data(), nullptr,
                          d_filter_only.data());
    ExpectClose("d_filter without d_input, " + Name(s), d_filter_only, d_filter_naive, 2e-5f);
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, DepthwiseConvTest, ::testing::Values(1, 2, 3),
                         [](const auto& info) { return absl::StrCat(info.param, "Threads"); });

TEST(DepthwiseConvKnownValuesTest, ForwardOfKnownValues) {
  // One channel, 3x3 input 1..9, all-ones filter, stride 1: each output is the sum of
  // its in-image 3x3 neighbourhood.
  const ConvGeometry g = ConvGeometry::Same(1, 3, 3, 1, 1, 3, 1);
  const std::vector<float> input = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<float> filter(9, 1.0f);
  std::vector<float> naive(9), fast(9);
  DepthwiseConvForwardNaive(g, input.data(), filter.data(), naive.data());
  DepthwiseConvForward(g, input.data(), filter.data(), fast.data());
  const std::vector<float> expected = {12, 21, 16, 27, 45, 33, 24, 39, 28};
  EXPECT_EQ(naive, expected);
  EXPECT_EQ(fast, expected);
}

TEST(DepthwiseConvKnownValuesTest, StrideTwoPadsBottomRight) {
  // 4x4 -> 2x2 with stride 2: TensorFlow SAME pads one row/column at the bottom/right
  // only, so output (0, 0) covers input rows/columns 0..2.
  const ConvGeometry g = ConvGeometry::Same(1, 4, 4, 1, 1, 3, 2);
  ASSERT_EQ(g.pad_top, 0);
  std::vector<float> input(16);
  for (int i = 0; i < 16; ++i) input[i] = static_cast<float>(i);
  const std::vector<float> filter(9, 1.0f);
  std::vector<float> naive(4), fast(4);
  DepthwiseConvForwardNaive(g, input.data(), filter.data(), naive.data());
  DepthwiseConvForward(g, input.data(), filter.data(), fast.data());
  // (0,0): rows 0-2, cols 0-2; (0,1): rows 0-2, cols 2-3; (1,0): rows 2-3, cols 0-2;
  // (1,1): rows 2-3, cols 2-3.
  const std::vector<float> expected = {45, 39, 66, 50};
  EXPECT_EQ(naive, expected);
  EXPECT_EQ(fast, expected);
}

TEST(DepthwiseConvGradientTest, MatchesFiniteDifferences) {
  for (const Shape& s : {Shape{2, 5, 10, 5, 1}, Shape{2, 5, 11, 5, 2}, Shape{1, 4, 7, 17, 2}}) {
    const ConvGeometry g = Geometry(s);
    std::vector<float> input = RandomTensor(g.input_size(), 7);
    std::vector<float> filter = RandomTensor(9 * s.channels, 8);
    const std::vector<float> weights = RandomTensor(g.output_size(), 9);
    std::vector<float> output(g.output_size());
    const auto loss = [&] {
      DepthwiseConvForward(g, input.data(), filter.data(), output.data());
      return WeightedSum(output, weights);
    };
    std::vector<float> d_input(g.input_size());
    std::vector<float> d_filter(9 * s.channels, 0.0f);
    DepthwiseConvBackward(g, input.data(), filter.data(), weights.data(), d_input.data(),
                          d_filter.data());
    ExpectGradientsMatch("d_input, " + Name(s), input, d_input, loss);
    ExpectGradientsMatch("d_filter, " + Name(s), filter, d_filter, loss);
  }
}

TEST(DepthwiseConvDeterminismTest, RepeatedRunsAreBitwiseIdentical) {
  SetComputeThreads(2);
  const ConvGeometry g = ConvGeometry::Same(4, 15, 15, 48, 48, 3, 1);
  const auto input = RandomTensor(g.input_size(), 13);
  const auto filter = RandomTensor(9 * 48, 14);
  const auto d_output = RandomTensor(g.output_size(), 15);
  std::vector<float> first(9 * 48, 0.0f), second = first, d_input(g.input_size());
  DepthwiseConvBackward(g, input.data(), filter.data(), d_output.data(), d_input.data(),
                        first.data());
  DepthwiseConvBackward(g, input.data(), filter.data(), d_output.data(), d_input.data(),
                        second.data());
  SetComputeThreads(1);
  EXPECT_EQ(first, second);
}

// Run with --gtest_also_run_disabled_tests; prints times at MobileNet-V1 shapes (batch 32
// at 224x224, batch 64 at the small resolutions).
TEST(DepthwiseConvBenchmark, DISABLED_Shapes) {
  const Shape shapes[] = {{32, 112, 112, 32, 1}, {32, 112, 112, 64, 2}, {32, 56, 56, 128, 1},
                          {32, 28, 28, 256, 1},  {32, 14, 14, 512, 1},  {32, 7, 7, 1024, 1},
                          {64, 14, 14, 32, 1},   {64, 7, 7, 128, 1},    {64, 4, 4, 256, 1},
                          {64, 2, 2, 512, 1},    {64, 1, 1, 1024, 1}};
  for (int threads : {1, 2}) {
    SetComputeThreads(threads);
    for (const Shape& s : shapes) {
      const ConvGeometry g = Geometry(s);
      const auto input = RandomTensor(g.input_size(), 1);
      const auto filter = RandomTensor(9 * s.channels, 2);
      const auto d_output = RandomTensor(g.output_size(), 3);
      std::vector<float> output(g.output_size()), d_input(g.input_size());
      std::vector<float> d_filter(9 * s.channels, 0.0f);
      const double gflop = 2.0 * 9 * g.output_size() * 1e-9;
      const int repeats = gflop > 0.1 ? 5 : 50;
      const double forward = BestMilliseconds(
          repeats, [&] { DepthwiseConvForward(g, input.data(), filter.data(), output.data()); });
      const double backward = BestMilliseconds(repeats, [&] {
        DepthwiseConvBackward(g, input.data(), filter.data(), d_output.data(), d_input.data(),
                              d_filter.data());
      });
      std::printf(
          "threads %d  %-30s forward %8.3f ms (%6.1f GFLOP/s)  backward %8.3f ms "
          "(%6.1f GFLOP/s)\n",
          threads, Name(s).c_str(), forward, gflop / forward * 1e3, backward,
          2 * gflop / backward * 1e3);
    }
  }
  SetComputeThreads(1);
  EXPECT_EQ(ComputeThreads(), 1);
}

}  // namespace
}  // namespace mobilenet
