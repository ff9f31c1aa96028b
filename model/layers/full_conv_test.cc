#include "model/layers/full_conv.h"

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
  int batch, h, w, cin, cout, kernel, stride;
};

std::string Name(const Shape& s) {
  return absl::StrCat("batch ", s.batch, " ", s.h, "x", s.w, "x", s.cin, " -> ", s.cout, " ",
                      s.kernel, "x", s.kernel, " stride ", s.stride);
}

ConvGeometry Geometry(const Shape& s) {
  return ConvGeometry::Same(s.batch, s.h, s.w, s.cin, s.cout, s.kernel, s.stride);
}

int64_t FilterSize(const Shape& s) { return int64_t{s.kernel} * s.kernel * s.cin * s.cout; }

// The first layer's shapes (3x3 stride 2 from 1 or 3 channels), odd sizes, H != W, other
// kernels and strides, and a batch large enough for several patch chunks per thread.
const Shape kShapes[] = {{2, 7, 9, 3, 8, 3, 2},   {3, 10, 6, 1, 32, 3, 2}, {1, 5, 5, 3, 13, 3, 1},
                         {2, 1, 1, 3, 8, 3, 2},   {1, 2, 3, 3, 16, 3, 2},  {2, 9, 8, 4, 5, 1, 1},
                         {1, 8, 7, 2, 6, 5, 3},   {2, 6, 6, 5, 7, 2, 2},   {2, 4, 4, 3, 8, 4, 1},
                         {4, 64, 64, 3, 24, 3, 2}};

class FullConvTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { SetComputeThreads(GetParam()); }
  void TearDown() override { SetComputeThreads(1); }
};

TEST_P(FullConvTest, ForwardMatchesNaive) {
  for (const Shape& s : kShapes) {
    const ConvGeometry g = Geometry(s);
    const auto input = RandomTensor(g.input_size(), 1);
    const auto filter = RandomTensor(FilterSize(s), 2);
    std::vector<float> fast(g.output_size(), NAN), naive(g.output_size(), NAN);
    FullConvForward(g, input.data(), filter.data(), fast.data());
    FullConvForwardNaive(g, input.data(), filter.data(), naive.data());
    ExpectClose("output, " + Name(s), fast, naive);
  }
}

TEST_P(FullConvTest, BackwardMatchesNaive) {
  for (const Shape& s : kShapes) {
    const ConvGeometry g = Geometry(s);
    const auto input = RandomTensor(g.input_size(), 3);
    const auto filter = RandomTensor(FilterSize(s), 4);
    const auto d_output = RandomTensor(g.output_size(), 5);
    // d_filter starts non-zero to check that it is accumulated; d_input starts as NaN to
    // check that every element is overwritten.
    const auto d_filter_start = RandomTensor(FilterSize(s), 6);
    std::vector<float> d_input(g.input_size(), NAN), d_input_naive(g.input_size(), NAN);
    std::vector<float> d_filter = d_filter_start, d_filter_naive = d_filter_start;
    FullConvBackward(g, input.data(), filter.data(), d_output.data(), d_input.data(),
                     d_filter.data());
    FullConvBackwardNaive(g, input.data(), filter.data(), d_output.data(), d_input_naive.data(),
                          d_filter_naive.data());
    ExpectClose("d_input, " + Name(s), d_input, d_input_naive);
    ExpectClose("d_filter, " + Name(s), d_filter, d_filter_naive, 1e-4f);

    // Without d_input (the network's first layer) the filter gradient is the same.
    std::vector<float> d_filter_only = d_filter_start;
    FullConvBackward(g, input.data(), filter.data(), d_output.data(), nullptr,
                     d_filter_only.data());
    ExpectClose("d_filter without d_input, " + Name(s), d_filter_only, d_filter_naive, 1e-4f);
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, FullConvTest, ::testing::Values(1, 2, 3),
                         [](const auto& info) { return absl::StrCat(info.param, "Threads"); });

TEST(FullConvKnownValuesTest, SumsChannelsOfTheNeighbourhood) {
  // 3x3 input with two channels (c0 = 1..9, c1 = 10 * c0), 3x3 all-ones filter to one
  // output channel, stride 1: each output is 11 times the sum of the in-image c0
  // neighbourhood.
  const ConvGeometry g = ConvGeometry::Same(1, 3, 3, 2, 1, 3, 1);
  std::vector<float> input(18);
  for (int i = 0; i < 9; ++i) {
    input[2 * i] = static_cast<float>(i + 1);
    input[2 * i + 1] = 10.0f * (i + 1);
  }
  const std::vector<float> filter(18, 1.0f);
  std::vector<float> naive(9), fast(9);
  FullConvForwardNaive(g, input.data(), filter.data(), naive.data());
  FullConvForward(g, input.data(), filter.data(), fast.data());
  const std::vector<float> expected = {132, 231, 176, 297, 495, 363, 264, 429, 308};
  EXPECT_EQ(naive, expected);
  EXPECT_EQ(fast, expected);
}

TEST(FullConvGradientTest, MatchesFiniteDifferences) {
  for (const Shape& s : {Shape{2, 5, 7, 3, 4, 3, 2}, Shape{1, 4, 5, 2, 3, 3, 1}}) {
    const ConvGeometry g = Geometry(s);
    auto input = RandomTensor(g.input_size(), 7);
    auto filter = RandomTensor(FilterSize(s), 8);
    const auto weights = RandomTensor(g.output_size(), 9);
    std::vector<float> output(g.output_size());
    const auto loss = [&] {
      FullConvForward(g, input.data(), filter.data(), output.data());
      return WeightedSum(output, weights);
    };
    std::vector<float> d_input(g.input_size());
    std::vector<float> d_filter(FilterSize(s), 0.0f);
    FullConvBackward(g, input.data(), filter.data(), weights.data(), d_input.data(),
                     d_filter.data());
    ExpectGradientsMatch("d_input, " + Name(s), input, d_input, loss);
    ExpectGradientsMatch("d_filter, " + Name(s), filter, d_filter, loss);
  }
}

TEST(FullConvDeterminismTest, RepeatedRunsAreBitwiseIdentical) {
  SetComputeThreads(2);
  const Shape s = {8, 32, 32, 3, 16, 3, 2};
  const ConvGeometry g = Geometry(s);
  const auto input = RandomTensor(g.input_size(), 10);
  const auto filter = RandomTensor(FilterSize(s), 11);
  const auto d_output = RandomTensor(g.output_size(), 12);
  std::vector<float> first(FilterSize(s), 0.0f), second = first;
  FullConvBackward(g, input.data(), filter.data(), d_output.data(), nullptr, first.data());
  FullConvBackward(g, input.data(), filter.data(), d_output.data(), nullptr, second.data());
  SetComputeThreads(1);
  EXPECT_EQ(first, second);
}

// Run with --gtest_also_run_disabled_tests; prints times at MobileNet-V1's first layer.
TEST(FullConvBenchmark, DISABLED_Shapes) {
  const Shape shapes[] = {{32, 224, 224, 3, 32, 3, 2},
                          {32, 224, 224, 3, 8, 3, 2},
                          {64, 28, 28, 1, 32, 3, 2},
                          {64, 32, 32, 3, 32, 3, 2}};
  for (int threads : {1, 2}) {
    SetComputeThreads(threads);
    for (const Shape& s : shapes) {
      const ConvGeometry g = Geometry(s);
      const auto input = RandomTensor(g.input_size(), 1);
      const auto filter = RandomTensor(FilterSize(s), 2);
      const auto d_output = RandomTensor(g.output_size(), 3);
      std::vector<float> output(g.output_size()), d_input(g.input_size());
      std::vector<float> d_filter(FilterSize(s), 0.0f);
      const double gflop = 2.0 * g.output_size() * s.kernel * s.kernel * s.cin * 1e-9;
      const int repeats = gflop > 0.1 ? 5 : 50;
      const double forward = BestMilliseconds(
          repeats, [&] { FullConvForward(g, input.data(), filter.data(), output.data()); });
      const double backward_filter = BestMilliseconds(repeats, [&] {
        FullConvBackward(g, input.data(), filter.data(), d_output.data(), nullptr, d_filter.data());
      });
      const double backward = BestMilliseconds(repeats, [&] {
        FullConvBackward(g, input.data(), filter.data(), d_output.data(), d_input.data(),
                         d_filter.data());
      });
      std::printf(
          "threads %d  %-42s forward %8.3f ms (%6.1f GFLOP/s)  backward d_filter only "
          "%8.3f ms (%6.1f GFLOP/s)  with d_input %8.3f ms\n",
          threads, Name(s).c_str(), forward, gflop / forward * 1e3, backward_filter,
          gflop / backward_filter * 1e3, backward);
    }
  }
  SetComputeThreads(1);
  EXPECT_EQ(ComputeThreads(), 1);
}

}  // namespace
}  // namespace mobilenet
