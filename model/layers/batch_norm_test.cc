#include "model/layers/batch_norm.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"
#include "model/layers/compute_threads.h"
#include "model/layers/gradient_check.h"
#include "model/layers/layer_benchmark.h"
#include "model/layers/random_tensor.h"
#include "model/layers/relu6.h"

namespace mobilenet {
namespace {

constexpr float kEps = 1e-3f;

struct Shape {
  int64_t m;
  int c;
};

// Small, several row blocks with a ragged last one, many channels, one row block.
const Shape kShapes[] = {{5, 3}, {3000, 8}, {700, 100}, {64, 1024}};

// Training-mode batch norm (optionally followed by ReLU6) in double.
struct Reference {
  std::vector<double> y, mean, variance;
};

Reference ReferenceTrainingForward(int64_t m, int c, const std::vector<float>& x,
                                   const std::vector<float>& gamma,
                                   const std::vector<float>& beta, bool relu6) {
  Reference r{std::vector<double>(m * c), std::vector<double>(c, 0.0),
              std::vector<double>(c, 0.0)};
  for (int64_t i = 0; i < m; ++i) {
    for (int ch = 0; ch < c; ++ch) r.mean[ch] += x[i * c + ch];
  }
  for (int ch = 0; ch < c; ++ch) r.mean[ch] /= m;
  for (int64_t i = 0; i < m; ++i) {
    for (int ch = 0; ch < c; ++ch) {
      const double d = x[i * c + ch] - r.mean[ch];
      r.variance[ch] += d * d;
    }
  }
  for (int ch = 0; ch < c; ++ch) r.variance[ch] /= m;
  for (int64_t i = 0; i < m; ++i) {
    for (int ch = 0; ch < c; ++ch) {
      double v = gamma[ch] * (x[i * c + ch] - r.mean[ch]) / std::sqrt(r.variance[ch] + kEps) +
                 beta[ch];
      if (relu6) v = std::min(std::max(v, 0.0), 6.0);
      r.y[i * c + ch] = v;
    }
  }
  return r;
}

// sum(y * weights) with y from the double reference: the loss of the gradient checks.
double ReferenceLoss(int64_t m, int c, const std::vector<float>& x,
                     const std::vector<float>& gamma, const std::vector<float>& beta, bool relu6,
                     const std::vector<float>& weights) {
  const Reference r = ReferenceTrainingForward(m, c, x, gamma, beta, relu6);
  double loss = 0;
  for (size_t i = 0; i < r.y.size(); ++i) loss += r.y[i] * weights[i];
  return loss;
}

// Input gradient of the training-mode batch norm in double (no ReLU6).
std::vector<double> ReferenceInputGradient(int64_t m, int c, const std::vector<float>& x,
                                           const std::vector<float>& gamma,
                                           const Reference& r, const std::vector<float>& d_y) {
  std::vector<double> sum_dy(c, 0.0), sum_dy_xhat(c, 0.0), d_x(m * c);
  for (int64_t i = 0; i < m; ++i) {
    for (int ch = 0; ch < c; ++ch) {
      const double x_hat = (x[i * c + ch] - r.mean[ch]) / std::sqrt(r.variance[ch] + kEps);
      sum_dy[ch] += d_y[i * c + ch];
      sum_dy_xhat[ch] += d_y[i * c + ch] * x_hat;
    }
  }
  for (int64_t i = 0; i < m; ++i) {
    for (int ch = 0; ch < c; ++ch) {
      const double inv_std = 1 / std::sqrt(r.variance[ch] + kEps);
      const double x_hat = (x[i * c + ch] - r.mean[ch]) * inv_std;
      d_x[i * c + ch] = gamma[ch] * inv_std *
                        (d_y[i * c + ch] - sum_dy[ch] / m - x_hat * sum_dy_xhat[ch] / m);
    }
  }
  return d_x;
}

template <typename T>
void ExpectClose(const std::vector<float>& actual, const std::vector<T>& expected,
                 double tolerance, const char* what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i) {
    ASSERT_NEAR(actual[i], expected[i], tolerance * (1 + std::fabs(expected[i])))
        << what << "[" << i << "]";
  }
}

class BatchNormTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { SetComputeThreads(GetParam()); }
  void TearDown() override { SetComputeThreads(1); }
};

TEST_P(BatchNormTest, TrainingForwardMatchesReference) {
  for (const Shape& s : kShapes) {
    // A large common offset: the variance must not be lost to cancellation.
    for (float offset : {0.0f, 1000.0f}) {
      const auto x = RandomTensor(s.m * s.c, 1, offset - 2, offset + 2);
      const auto gamma = RandomTensor(s.c, 2, 0.5f, 2.0f);
      const auto beta = RandomTensor(s.c, 3);
      std::vector<float> y(s.m * s.c), mean(s.c), variance(s.c);
      BatchNormTrainingForward(s.m, s.c, x.data(), gamma.data(), beta.data(), kEps, y.data(),
                               mean.data(), variance.data());
      const Reference r = ReferenceTrainingForward(s.m, s.c, x, gamma, beta, false);
      ExpectClose(mean, r.mean, 1e-6, "mean");
      ExpectClose(variance, r.variance, offset == 0 ? 1e-5 : 1e-3, "variance");
      ExpectClose(y, r.y, offset == 0 ? 1e-5 : 2e-3, "y");
    }
  }
}

TEST_P(BatchNormTest, InferenceForwardMatchesReferenceInPlace) {
  for (const Shape& s : kShapes) {
    auto x = RandomTensor(s.m * s.c, 4, -3, 5);
    const auto gamma = RandomTensor(s.c, 5, 0.5f, 3.0f);
    const auto beta = RandomTensor(s.c, 6, 0.0f, 4.0f);
    const auto moving_mean = RandomTensor(s.c, 7);
    const auto moving_variance = RandomTensor(s.c, 8, 0.1f, 2.0f);
    std::vector<double> expected(x.size()), expected_relu6(x.size());
    for (int64_t i = 0; i < s.m; ++i) {
      for (int ch = 0; ch < s.c; ++ch) {
        const double v = gamma[ch] * (x[i * s.c + ch] - moving_mean[ch]) /
                             std::sqrt(double{moving_variance[ch]} + kEps) +
                         beta[ch];
        expected[i * s.c + ch] = v;
        expected_relu6[i * s.c + ch] = std::min(std::max(v, 0.0), 6.0);
      }
    }
    std::vector<float> y(x.size());
    BatchNormInferenceForward(s.m, s.c, x.data(), gamma.data(), beta.data(),
                              moving_mean.data(), moving_variance.data(), kEps, y.data());
    ExpectClose(y, expected, 1e-5, "y");
    std::vector<float> a = x;  // a aliases z
    BatchNormRelu6InferenceForward(s.m, s.c, a.data(), gamma.data(), beta.data(),
                                   moving_mean.data(), moving_variance.data(), kEps, a.data());
    ExpectClose(a, expected_relu6, 1e-5, "a");
    BatchNormInferenceForward(s.m, s.c, x.data(), gamma.data(), beta.data(),
                              moving_mean.data(), moving_variance.data(), kEps, x.data());
    EXPECT_EQ(x, y) << "in place";
  }
}

TEST_P(BatchNormTest, BackwardMatchesReferenceAndAccumulates) {
  for (const Shape& s : kShapes) {
    const auto x = RandomTensor(s.m * s.c, 9, -1, 3);
    const auto gamma = RandomTensor(s.c, 10, 0.5f, 2.0f);
    const auto beta = RandomTensor(s.c, 11);
    const auto d_y = RandomTensor(s.m * s.c, 12);
    std::vector<float> y(s.m * s.c), mean(s.c), variance(s.c);
    BatchNormTrainingForward(s.m, s.c, x.data(), gamma.data(), beta.data(), kEps, y.data(),
                             mean.data(), variance.data());
    const auto initial_gamma = RandomTensor(s.c, 13);
    const auto initial_beta = RandomTensor(s.c, 14);
    std::vector<float> d_x(x.size()), d_gamma = initial_gamma, d_beta = initial_beta;
    BatchNormBackward(s.m, s.c, x.data(), gamma.data(), mean.data(), variance.data(), kEps,
                      d_y.data(), d_x.data(), d_gamma.data(), d_beta.data());

    const Reference r = ReferenceTrainingForward(s.m, s.c, x, gamma, beta, false);
    std::vector<double> expected_gamma(s.c), expected_beta(s.c);
    for (int ch = 0; ch < s.c; ++ch) {
      double sum_dy = 0, sum_dy_xhat = 0;
      for (int64_t i = 0; i < s.m; ++i) {
        sum_dy += d_y[i * s.c + ch];
        sum_dy_xhat += d_y[i * s.c + ch] * (x[i * s.c + ch] - r.mean[ch]) /
                       std::sqrt(r.variance[ch] + kEps);
      }
      expected_gamma[ch] = initial_gamma[ch] + sum_dy_xhat;
      expected_beta[ch] = initial_beta[ch] + sum_dy;
    }
    ExpectClose(d_x, ReferenceInputGradient(s.m, s.c, x, gamma, r, d_y), 1e-4, "d_x");
    ExpectClose(d_gamma, expected_gamma, 1e-4, "d_gamma");
    ExpectClose(d_beta, expected_beta, 1e-4, "d_beta");
  }
}

// Weights for the fused tests: large enough that both ReLU6 clamps are hit.
struct FusedCase {
  std::vector<float> z, gamma, beta, d_a;
};

FusedCase MakeFusedCase(const Shape& s, uint32_t seed) {
  return {RandomTensor(s.m * s.c, seed, -2, 2), RandomTensor(s.c, seed + 1, 1.0f, 4.0f),
          RandomTensor(s.c, seed + 2, 1.0f, 5.0f), RandomTensor(s.m * s.c, seed + 3)};
}

TEST_P(BatchNormTest, FusedForwardEqualsBatchNormThenRelu6) {
  for (const Shape& s : kShapes) {
    const FusedCase f = MakeFusedCase(s, 20);
    std::vector<float> y(f.z.size()), mean(s.c), variance(s.c);
    BatchNormTrainingForward(s.m, s.c, f.z.data(), f.gamma.data(), f.beta.data(), kEps,
                             y.data(), mean.data(), variance.data());
    Relu6Forward(s.m * s.c, y.data(), y.data());
    std::vector<float> a(f.z.size()), fused_mean(s.c), fused_variance(s.c);
    BatchNormRelu6TrainingForward(s.m, s.c, f.z.data(), f.gamma.data(), f.beta.data(), kEps,
                                  a.data(), fused_mean.data(), fused_variance.data());
    ExpectClose(a, std::vector<double>(y.begin(), y.end()), 1e-6, "a");
    ExpectClose(fused_mean, std::vector<double>(mean.begin(), mean.end()), 1e-6, "mean");
    ExpectClose(fused_variance, std::vector<double>(variance.begin(), variance.end()), 1e-6,
                "variance");
    const bool clamped_low = std::count(a.begin(), a.end(), 0.0f) > 0;
    const bool clamped_high = std::count(a.begin(), a.end(), 6.0f) > 0;
    if (s.m * s.c > 100) {
      EXPECT_TRUE(clamped_low && clamped_high) << "weak test case";
    }
  }
}

TEST_P(BatchNormTest, FusedBackwardEqualsRelu6ThenBatchNormBackward) {
  for (const Shape& s : kShapes) {
    const FusedCase f = MakeFusedCase(s, 30);
    std::vector<float> a(f.z.size()), mean(s.c), variance(s.c);
    BatchNormRelu6TrainingForward(s.m, s.c, f.z.data(), f.gamma.data(), f.beta.data(), kEps,
                                  a.data(), mean.data(), variance.data());
    std::vector<float> d_y(f.z.size()), d_z(f.z.size());
    std::vector<float> d_gamma(s.c, 0.5f), d_beta(s.c, -0.5f);
    Relu6Backward(s.m * s.c, a.data(), f.d_a.data(), d_y.data());
    BatchNormBackward(s.m, s.c, f.z.data(), f.gamma.data(), mean.data(), variance.data(), kEps,
                      d_y.data(), d_z.data(), d_gamma.data(), d_beta.data());

    std::vector<float> fused_d_z = f.d_a;  // d_z aliases d_a
    std::vector<float> fused_d_gamma(s.c, 0.5f), fused_d_beta(s.c, -0.5f);
    BatchNormRelu6Backward(s.m, s.c, f.z.data(), a.data(), f.gamma.data(), mean.data(),
                           variance.data(), kEps, fused_d_z.data(), fused_d_z.data(),
                           fused_d_gamma.data(), fused_d_beta.data());
    // Equal up to rounding: the compiler may contract multiply-adds differently in the two.
    ExpectClose(fused_d_z, std::vector<double>(d_z.begin(), d_z.end()), 1e-5, "d_z");
    ExpectClose(fused_d_gamma, std::vector<double>(d_gamma.begin(), d_gamma.end()), 1e-5,
                "d_gamma");
    ExpectClose(fused_d_beta, std::vector<double>(d_beta.begin(), d_beta.end()), 1e-5,
                "d_beta");
  }
}

TEST_P(BatchNormTest, ResultsDoNotDependOnThreadCount) {
  const Shape s = {5000, 48};
  const FusedCase f = MakeFusedCase(s, 40);
  struct Outputs {
    std::vector<float> a, mean, variance, d_z, d_gamma, d_beta;
  };
  const auto run = [&](int threads) {
    SetComputeThreads(threads);
    Outputs o{std::vector<float>(f.z.size()), std::vector<float>(s.c),
              std::vector<float>(s.c), std::vector<float>(f.z.size()),
              std::vector<float>(s.c, 0.0f), std::vector<float>(s.c, 0.0f)};
    BatchNormRelu6TrainingForward(s.m, s.c, f.z.data(), f.gamma.data(), f.beta.data(), kEps,
                                  o.a.data(), o.mean.data(), o.variance.data());
    BatchNormRelu6Backward(s.m, s.c, f.z.data(), o.a.data(), f.gamma.data(), o.mean.data(),
                           o.variance.data(), kEps, f.d_a.data(), o.d_z.data(),
                           o.d_gamma.data(), o.d_beta.data());
    return o;
  };
  const Outputs one = run(1);
  const Outputs other = run(GetParam() == 1 ? 2 : 1);
  const Outputs again = run(GetParam());
  for (const Outputs* o : {&other, &again}) {
    EXPECT_EQ(o->a, one.a);
    EXPECT_EQ(o->mean, one.mean);
    EXPECT_EQ(o->variance, one.variance);
    EXPECT_EQ(o->d_z, one.d_z);
    EXPECT_EQ(o->d_gamma, one.d_gamma);
    EXPECT_EQ(o->d_beta, one.d_beta);
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, BatchNormTest, ::testing::Values(1, 2));

TEST(BatchNormGradientTest, MatchesFiniteDifferences) {
  const int64_t m = 10;
  const int c = 3;
  auto x = RandomTensor(m * c, 50, -2, 2);
  auto gamma = RandomTensor(c, 51, 0.5f, 2.0f);
  auto beta = RandomTensor(c, 52);
  const auto weights = RandomTensor(m * c, 53);
  std::vector<float> y(m * c), mean(c), variance(c), d_x(m * c);
  std::vector<float> d_gamma(c, 0.0f), d_beta(c, 0.0f);
  BatchNormTrainingForward(m, c, x.data(), gamma.data(), beta.data(), kEps, y.data(),
                           mean.data(), variance.data());
  BatchNormBackward(m, c, x.data(), gamma.data(), mean.data(), variance.data(), kEps,
                    weights.data(), d_x.data(), d_gamma.data(), d_beta.data());
  const auto loss = [&] { return ReferenceLoss(m, c, x, gamma, beta, false, weights); };
  ExpectGradientsMatch("d_x", x, d_x, loss, 1e-3);
  ExpectGradientsMatch("d_gamma", gamma, d_gamma, loss, 1e-3);
  ExpectGradientsMatch("d_beta", beta, d_beta, loss, 1e-3);
}

TEST(BatchNormRelu6GradientTest, MatchesFiniteDifferencesAwayFromKinks) {
  const int64_t m = 12;
  const int c = 3;
  const float kMargin = 0.05f;
  auto z = RandomTensor(m * c, 60, -2, 2);
  auto gamma = RandomTensor(c, 61, 1.0f, 4.0f);
  auto beta = RandomTensor(c, 62, 1.0f, 5.0f);
  // Nudge inputs whose normalized value lands near 0 or 6 until none does, so that the
  // finite differences never straddle a kink.
  for (int round = 0; round < 100; ++round) {
    const Reference r = ReferenceTrainingForward(m, c, z, gamma, beta, false);
    bool moved = false;
    for (int64_t i = 0; i < m * c; ++i) {
      const double v = r.y[i];
      if (std::fabs(v) < kMargin || std::fabs(v - 6) < kMargin) {
        z[i] += 0.1f;
        moved = true;
      }
    }
    if (!moved) break;
    ASSERT_LT(round, 99) << "could not keep inputs away from the ReLU6 kinks";
  }
  const Reference r = ReferenceTrainingForward(m, c, z, gamma, beta, true);
  ASSERT_GT(std::count(r.y.begin(), r.y.end(), 0.0) + std::count(r.y.begin(), r.y.end(), 6.0),
            0)
      << "weak test case: no element clamped";

  const auto weights = RandomTensor(m * c, 63);
  std::vector<float> a(m * c), mean(c), variance(c), d_z(m * c);
  std::vector<float> d_gamma(c, 0.0f), d_beta(c, 0.0f);
  BatchNormRelu6TrainingForward(m, c, z.data(), gamma.data(), beta.data(), kEps, a.data(),
                                mean.data(), variance.data());
  BatchNormRelu6Backward(m, c, z.data(), a.data(), gamma.data(), mean.data(), variance.data(),
                         kEps, weights.data(), d_z.data(), d_gamma.data(), d_beta.data());
  const auto loss = [&] { return ReferenceLoss(m, c, z, gamma, beta, true, weights); };
  ExpectGradientsMatch("d_z", z, d_z, loss, 1e-3);
  ExpectGradientsMatch("d_gamma", gamma, d_gamma, loss, 1e-3);
  ExpectGradientsMatch("d_beta", beta, d_beta, loss, 1e-3);
}

// Run with --gtest_also_run_disabled_tests; prints times of the fused kernels at
// MobileNet-V1 shapes (batch 32). Traffic counts each tensor read or written once: forward
// 2 reads + 1 write of [M, C], backward 6 reads + 1 write.
TEST(BatchNormBenchmark, DISABLED_Shapes) {
  const Shape shapes[] = {{32 * 112 * 112, 32}, {32 * 112 * 112, 64}, {32 * 56 * 56, 128},
                          {32 * 28 * 28, 256},  {32 * 14 * 14, 512},  {32 * 7 * 7, 1024},
                          {64, 1024}};
  for (int threads : {1, 2}) {
    SetComputeThreads(threads);
    for (const Shape& s : shapes) {
      const FusedCase f = MakeFusedCase(s, 70);
      std::vector<float> a(f.z.size()), d_z(f.z.size()), mean(s.c), variance(s.c);
      std::vector<float> d_gamma(s.c, 0.0f), d_beta(s.c, 0.0f);
      const double megabytes = s.m * s.c * 4e-6;
      const int repeats = s.m * s.c > (1 << 22) ? 5 : 20;
      const double forward = BestMilliseconds(repeats, [&] {
        BatchNormRelu6TrainingForward(s.m, s.c, f.z.data(), f.gamma.data(), f.beta.data(), kEps,
                                      a.data(), mean.data(), variance.data());
      });
      const double backward = BestMilliseconds(repeats, [&] {
        BatchNormRelu6Backward(s.m, s.c, f.z.data(), a.data(), f.gamma.data(), mean.data(),
                               variance.data(), kEps, f.d_a.data(), d_z.data(),
                               d_gamma.data(), d_beta.data());
      });
      std::printf(
          "threads %d  M %7lld C %4d  fused forward %7.3f ms (%5.1f GB/s)  "
          "fused backward %7.3f ms (%5.1f GB/s)\n",
          threads, static_cast<long long>(s.m), s.c, forward, 3 * megabytes / forward,
          backward, 7 * megabytes / backward);
    }
  }
  SetComputeThreads(1);
  EXPECT_EQ(ComputeThreads(), 1);
}

}  // namespace
}  // namespace mobilenet
