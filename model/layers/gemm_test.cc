#include "model/layers/gemm.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "model/layers/compute_threads.h"
#include "model/layers/random_tensor.h"

namespace mobilenet {
namespace {

// c = op(a) x op(b) + beta * c in double.
std::vector<float> ReferenceGemm(bool ta, bool tb, int m, int n, int k,
                                 const std::vector<float>& a, const std::vector<float>& b,
                                 float beta, const std::vector<float>& c) {
  std::vector<float> out(c.size());
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double sum = beta == 0 ? 0.0 : double{beta} * c[i * n + j];
      for (int p = 0; p < k; ++p) {
        const float av = ta ? a[p * m + i] : a[i * k + p];
        const float bv = tb ? b[j * k + p] : b[p * n + j];
        sum += double{av} * bv;
      }
      out[i * n + j] = static_cast<float>(sum);
    }
  }
  return out;
}

struct Shape {
  int m, n, k;
};

class GemmTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { SetComputeThreads(GetParam()); }
  void TearDown() override { SetComputeThreads(1); }
};

TEST_P(GemmTest, MatchesReferenceForEveryTransposeAndSplit) {
  // Tall (row split), wide (column split), every tile height 1..12 and ragged panel widths
  // (m, n mod 12 and 32), several depth blocks (k > 256), several width blocks (n > 512),
  // few rows with whole panels (op(b) read in place), and a product too small to split.
  const Shape shapes[] = {{1000, 48, 40}, {40, 1000, 48}, {333, 77, 129}, {13, 64, 600},
                          {30, 700, 300}, {23, 33, 11},   {5, 7, 3},      {1, 1, 1}};
  uint32_t seed = 1;
  for (const Shape& s : shapes) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        for (float beta : {0.0f, 1.0f, 0.5f}) {
          const auto a = RandomTensor(int64_t{s.m} * s.k, seed++);
          const auto b = RandomTensor(int64_t{s.k} * s.n, seed++);
          auto c = RandomTensor(int64_t{s.m} * s.n, seed++);
          // beta == 0 must ignore whatever c held.
          if (beta == 0) c[0] = std::numeric_limits<float>::quiet_NaN();
          const auto expected = ReferenceGemm(ta, tb, s.m, s.n, s.k, a, b, beta, c);
          Gemm(ta ? MatrixOp::kTransposed : MatrixOp::kAsIs,
               tb ? MatrixOp::kTransposed : MatrixOp::kAsIs, s.m, s.n, s.k, a.data(), b.data(),
               beta, c.data());
          for (size_t i = 0; i < c.size(); ++i) {
            ASSERT_NEAR(c[i], expected[i], 1e-4 * std::sqrt(s.k) + 1e-5)
                << "m=" << s.m << " n=" << s.n << " k=" << s.k << " ta=" << ta << " tb=" << tb
                << " beta=" << beta << " i=" << i;
          }
        }
      }
    }
  }
}

TEST_P(GemmTest, EmptyProductScalesC) {
  std::vector<float> c = {1, 2, 3, 4, 5, 6};
  Gemm(MatrixOp::kAsIs, MatrixOp::kAsIs, 2, 3, 0, nullptr, nullptr, 0.5f, c.data());
  EXPECT_EQ(c, (std::vector<float>{0.5f, 1, 1.5f, 2, 2.5f, 3}));
  c[0] = std::numeric_limits<float>::quiet_NaN();
  Gemm(MatrixOp::kAsIs, MatrixOp::kAsIs, 2, 3, 0, nullptr, nullptr, 0.0f, c.data());
  EXPECT_EQ(c, std::vector<float>(6, 0.0f));
}

TEST_P(GemmTest, RepeatedRunsAreBitwiseIdentical) {
  // A weight-gradient shaped product: [90, 700] x [700, 80].
  const int rows = 700, cin = 90, cout = 80;
  const auto input = RandomTensor(int64_t{rows} * cin, 11);
  const auto d_output = RandomTensor(int64_t{rows} * cout, 12);
  std::vector<float> first(cin * cout), second(cin * cout);
  Gemm(MatrixOp::kTransposed, MatrixOp::kAsIs, cin, cout, rows, input.data(), d_output.data(),
       0.0f, first.data());
  Gemm(MatrixOp::kTransposed, MatrixOp::kAsIs, cin, cout, rows, input.data(), d_output.data(),
       0.0f, second.data());
  EXPECT_EQ(first, second);
  EXPECT_NE(first[0], 0.0f);
}

INSTANTIATE_TEST_SUITE_P(Threads, GemmTest, ::testing::Values(1, 2));


TEST(ComputeThreadsTest, SetAndGet) {
  EXPECT_EQ(ComputeThreads(), 1);
  SetComputeThreads(2);
  EXPECT_EQ(ComputeThreads(), 2);
  SetComputeThreads(1);
  EXPECT_EQ(ComputeThreads(), 1);
}

}  // namespace
}  // namespace mobilenet
