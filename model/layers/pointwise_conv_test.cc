#include "model/layers/pointwise_conv.h"

#include <cmath>
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"
#include "model/layers/compute_threads.h"
#include "model/layers/gemm.h"
#include "model/layers/gradient_check.h"
#include "model/layers/layer_benchmark.h"
#include "model/layers/random_tensor.h"

namespace mobilenet {
namespace {

void ExpectNear(const std::vector<float>& actual, const std::vector<float>& expected,
                float tolerance, const char* what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i) {
    ASSERT_NEAR(actual[i], expected[i], tolerance) << what << "[" << i << "]";
  }
}

struct Shape {
  int64_t m;
  int cin, cout;
};

class PointwiseConvTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { SetComputeThreads(GetParam()); }
  void TearDown() override { SetComputeThreads(1); }
};

// Shapes that take the single-call path, the row split and the column split.
const Shape kShapes[] = {{7, 3, 5}, {2048, 32, 64}, {64, 256, 1024}, {301, 17, 33}};

TEST_P(PointwiseConvTest, ForwardMatchesNaive) {
  for (const Shape& s : kShapes) {
    const auto input = RandomTensor(s.m * s.cin, 1);
    const auto weights = RandomTensor(int64_t{s.cin} * s.cout, 2);
    std::vector<float> fast(s.m * s.cout, -7.0f), naive(s.m * s.cout);
    PointwiseConvForward(s.m, s.cin, s.cout, input.data(), weights.data(), fast.data());
    PointwiseConvForwardNaive(s.m, s.cin, s.cout, input.data(), weights.data(), naive.data());
    ExpectNear(fast, naive, 1e-4f * std::sqrt(s.cin), "output");
  }
}

TEST_P(PointwiseConvTest, BackwardMatchesNaiveAndAccumulates) {
  for (const Shape& s : kShapes) {
    const auto input = RandomTensor(s.m * s.cin, 3);
    const auto weights = RandomTensor(int64_t{s.cin} * s.cout, 4);
    const auto d_output = RandomTensor(s.m * s.cout, 5);
    const auto initial = RandomTensor(int64_t{s.cin} * s.cout, 6);
    std::vector<float> d_input(s.m * s.cin, -7.0f), d_input_naive(s.m * s.cin);
    std::vector<float> d_weights = initial, d_weights_naive(initial.size(), 0.0f);
    PointwiseConvBackward(s.m, s.cin, s.cout, input.data(), weights.data(), d_output.data(),
                          d_input.data(), d_weights.data());
    PointwiseConvBackwardNaive(s.m, s.cin, s.cout, input.data(), weights.data(),
                               d_output.data(), d_input_naive.data(), d_weights_naive.data());
    // The fast kernel added to `initial`; the naive one to zeros.
    for (size_t i = 0; i < initial.size(); ++i) d_weights_naive[i] += initial[i];
    ExpectNear(d_input, d_input_naive, 1e-4f * std::sqrt(s.cout), "d_input");
    ExpectNear(d_weights, d_weights_naive, 1e-4f * std::sqrt(s.m), "d_weights");

    // Without d_input, d_weights is still accumulated.
    std::vector<float> d_weights_again = initial;
    PointwiseConvBackward(s.m, s.cin, s.cout, input.data(), weights.data(), d_output.data(),
                          nullptr, d_weights_again.data());
    ExpectNear(d_weights_again, d_weights, 1e-6f, "d_weights without d_input");
  }
}

TEST_P(PointwiseConvTest, RepeatedRunsAreBitwiseIdentical) {
  const Shape s = {4096, 64, 128};
  const auto input = RandomTensor(s.m * s.cin, 7);
  const auto weights = RandomTensor(int64_t{s.cin} * s.cout, 8);
  const auto d_output = RandomTensor(s.m * s.cout, 9);
  std::vector<float> first(int64_t{s.cin} * s.cout, 0.0f), second = first;
  std::vector<float> d_input(s.m * s.cin);
  PointwiseConvBackward(s.m, s.cin, s.cout, input.data(), weights.data(), d_output.data(),
                        d_input.data(), first.data());
  PointwiseConvBackward(s.m, s.cin, s.cout, input.data(), weights.data(), d_output.data(),
                        d_input.data(), second.data());
  EXPECT_EQ(first, second);
}

INSTANTIATE_TEST_SUITE_P(Threads, PointwiseConvTest, ::testing::Values(1, 2));

TEST(PointwiseConvGradientTest, MatchesFiniteDifferences) {
  const int64_t m = 6;
  const int cin = 4, cout = 5;
  auto input = RandomTensor(m * cin, 10);
  auto weights = RandomTensor(int64_t{cin} * cout, 11);
  // loss = sum(output * r), so d_output = r.
  const auto r = RandomTensor(m * cout, 12);
  const auto loss = [&] {
    std::vector<float> output(m * cout);
    PointwiseConvForward(m, cin, cout, input.data(), weights.data(), output.data());
    return WeightedSum(output, r);
  };
  std::vector<float> d_input(m * cin), d_weights(int64_t{cin} * cout, 0.0f);
  PointwiseConvBackward(m, cin, cout, input.data(), weights.data(), r.data(), d_input.data(),
                        d_weights.data());
  ExpectGradientsMatch("d_input", input, d_input, loss);
  ExpectGradientsMatch("d_weights", weights, d_weights, loss);
}

// Run with --gtest_also_run_disabled_tests; prints times at MobileNet-V1 shapes (batch 32).
TEST(PointwiseConvBenchmark, DISABLED_Shapes) {
  const Shape shapes[] = {{32 * 112 * 112, 32, 64}, {32 * 56 * 56, 64, 128},
                          {32 * 56 * 56, 128, 128}, {32 * 28 * 28, 256, 256},
                          {32 * 14 * 14, 512, 512}, {32 * 7 * 7, 1024, 1024},
                          {64, 1024, 1024}};
  for (int threads : {1, 2}) {
    SetComputeThreads(threads);
    for (const Shape& s : shapes) {
      const auto input = RandomTensor(s.m * s.cin, 1);
      const auto weights = RandomTensor(int64_t{s.cin} * s.cout, 2);
      std::vector<float> output(s.m * s.cout), d_input(s.m * s.cin);
      std::vector<float> d_weights(int64_t{s.cin} * s.cout, 0.0f);
      const double gflop = 2.0 * s.m * s.cin * s.cout * 1e-9;
      const int repeats = gflop > 5 ? 3 : 10;
      const double forward = BestMilliseconds(repeats, [&] {
        PointwiseConvForward(s.m, s.cin, s.cout, input.data(), weights.data(), output.data());
      });
      const double backward = BestMilliseconds(repeats, [&] {
        PointwiseConvBackward(s.m, s.cin, s.cout, input.data(), weights.data(), output.data(),
                              d_input.data(), d_weights.data());
      });
      std::printf(
          "threads %d  M %7lld Cin %4d Cout %4d  forward %8.3f ms (%6.1f GFLOP/s)  "
          "backward %8.3f ms (%6.1f GFLOP/s)\n",
          threads, static_cast<long long>(s.m), s.cin, s.cout, forward, gflop / forward * 1e3,
          backward, 2 * gflop / backward * 1e3);
    }
  }
  SetComputeThreads(1);
  EXPECT_EQ(ComputeThreads(), 1);
}

}  // namespace
}  // namespace mobilenet
