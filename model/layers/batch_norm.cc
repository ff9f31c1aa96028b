#include "model/layers/batch_norm.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "model/layers/compute_threads.h"

// Every kernel here is memory-bound, so each makes as few passes over the [M, C] tensors as
// the math allows: statistics (one read), then apply (one read, one write); the backward
// reads its inputs twice and writes d_x once. All passes of a kernel share one OpenMP
// region.
//
// Reductions are deterministic: rows are cut into blocks fixed by the shape alone; inside a
// block, runs of a few dozen rows are summed in float with the accumulators of a group of
// channels held in registers, each run's sums are added into the block's double sums, and
// the block sums are added in block order. Results are bitwise identical from run to run
// and for any ComputeThreads().

namespace mobilenet {
namespace {

// Row blocks are the unit of parallel work: at most kMaxBlocks of them (so the block sums
// stay small next to the pass), each of at least ~64 KiB of floats.
constexpr int64_t kMaxBlocks = 32;
constexpr int64_t kBlockElements = 16384;
// Tensors smaller than this run on one thread.
constexpr int64_t kMinParallelElements = int64_t{1} << 15;

class RowBlocks {
 public:
  RowBlocks(int64_t m, int c)
      : m_(m),
        rows_(std::max({(m + kMaxBlocks - 1) / kMaxBlocks, kBlockElements / c, int64_t{8}})),
        count_((m + rows_ - 1) / rows_) {}
  int64_t count() const { return count_; }
  int64_t begin(int64_t block) const { return block * rows_; }
  int64_t end(int64_t block) const { return std::min(m_, (block + 1) * rows_); }

 private:
  int64_t m_;
  int64_t rows_;
  int64_t count_;
};

// Per-block sums: `size` doubles of scratch owned by the calling thread and reused across
// calls (a fresh allocation of this size would be page-faulted in on every call).
double* BlockSumsScratch(int64_t size) {
  thread_local std::vector<double> scratch;
  if (static_cast<int64_t>(scratch.size()) < size) scratch.resize(size);
  return scratch.data();
}

// Rows summed in float before a run's sums go into double: a run of all C channels stays
// in L1/L2 while it is read once per channel group; at most 128 rows keeps float error low.
int64_t RunRows(int c) { return std::clamp<int64_t>(kBlockElements / c, 8, 128); }

int ThreadsFor(int64_t m, int c) {
  return m * c < kMinParallelElements ? 1 : ComputeThreads();
}

template <int kWidth>
using Width = std::integral_constant<int, kWidth>;

// Calls group(Width<W>(), first) for consecutive channel groups covering [0, c): as many of
// width 64 as fit, then at most one of 32 and one of 16, then single channels. A fixed width
// lets the compiler unroll a group's lanes and keep its accumulators in registers.
template <typename Group>
void ForChannelGroups(int c, const Group& group) {
  int first = 0;
  for (; first + 64 <= c; first += 64) group(Width<64>(), first);
  if (first + 32 <= c) {
    group(Width<32>(), first);
    first += 32;
  }
  if (first + 16 <= c) {
    group(Width<16>(), first);
    first += 16;
  }
  for (; first < c; ++first) group(Width<1>(), first);
}

struct TermPair {
  float a, b;
};

// Sets sum_a[ch], sum_b[ch] to the sums over rows [begin, end) of two per-element terms;
// terms(i, ch) returns them (a TermPair) for element i = row * c + ch.
template <typename Terms>
void SumTermsOverRows(int64_t begin, int64_t end, int c, const Terms& terms, double* sum_a,
                      double* sum_b) {
  std::fill(sum_a, sum_a + c, 0.0);
  std::fill(sum_b, sum_b + c, 0.0);
  const int64_t run = RunRows(c);
  for (int64_t run_begin = begin; run_begin < end; run_begin += run) {
    const int64_t run_end = std::min(end, run_begin + run);
    ForChannelGroups(c, [&](auto width, int first) {
      constexpr int kWidth = decltype(width)::value;
      float a[kWidth] = {}, b[kWidth] = {};
      for (int64_t r = run_begin; r < run_end; ++r) {
        const int64_t row = r * c + first;
#pragma omp simd
        for (int l = 0; l < kWidth; ++l) {
          const TermPair t = terms(row + l, first + l);
          a[l] += t.a;
          b[l] += t.b;
        }
      }
      for (int l = 0; l < kWidth; ++l) {
        sum_a[first + l] += a[l];
        sum_b[first + l] += b[l];
      }
    });
  }
}

// Calls op(i, ch) for every element i = row * c + ch of rows [begin, end).
template <typename Op>
void ForEachElement(int64_t begin, int64_t end, int c, const Op& op) {
  for (int64_t r = begin; r < end; ++r) {
    ForChannelGroups(c, [&](auto width, int first) {
      constexpr int kWidth = decltype(width)::value;
      const int64_t row = r * c + first;
#pragma omp simd
      for (int l = 0; l < kWidth; ++l) op(row + l, first + l);
    });
  }
}

float InverseStd(float variance, float eps) { return 1.0f / std::sqrt(variance + eps); }

float Relu6(float v) { return std::min(std::max(v, 0.0f), 6.0f); }

// y = x * scale + shift per channel over rows [begin, end), clamped to [0, 6] if kRelu6.
// y may alias x.
template <bool kRelu6>
void ApplyRows(int64_t begin, int64_t end, int c, const float* x, const float* scale,
               const float* shift, float* y) {
  ForEachElement(begin, end, c, [=](int64_t i, int ch) {
    const float v = std::fma(x[i], scale[ch], shift[ch]);
    y[i] = kRelu6 ? Relu6(v) : v;
  });
}

template <bool kRelu6>
void TrainingForward(int64_t m, int c, const float* x, const float* gamma, const float* beta,
                     float eps, float* y, float* mean, float* variance) {
  const RowBlocks blocks(m, c);
  // Per block, sums of d = x - pivot and of d^2 with pivot = the first row: shifting by a
  // sample keeps E[d^2] - E[d]^2 from cancelling when |mean| >> std.
  double* const block_sums = BlockSumsScratch(blocks.count() * 2 * c);
  std::vector<float> scale(c), shift(c);
  const float* pivot = x;
  const auto shifted = [x, pivot](int64_t i, int ch) {
    const float d = x[i] - pivot[ch];
    return TermPair{d, d * d};
  };
#pragma omp parallel num_threads(ThreadsFor(m, c))
  {
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks.count(); ++b) {
      double* sum = block_sums + b * 2 * c;
      SumTermsOverRows(blocks.begin(b), blocks.end(b), c, shifted, sum, sum + c);
    }
#pragma omp for schedule(static)
    for (int ch = 0; ch < c; ++ch) {
      double sum = 0, sum_sq = 0;
      for (int64_t b = 0; b < blocks.count(); ++b) {
        sum += block_sums[b * 2 * c + ch];
        sum_sq += block_sums[b * 2 * c + c + ch];
      }
      const double shifted_mean = sum / m;
      mean[ch] = static_cast<float>(pivot[ch] + shifted_mean);
      variance[ch] = static_cast<float>(std::max(0.0, sum_sq / m - shifted_mean * shifted_mean));
      scale[ch] = gamma[ch] * InverseStd(variance[ch], eps);
      shift[ch] = beta[ch] - mean[ch] * scale[ch];
    }
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks.count(); ++b) {
      ApplyRows<kRelu6>(blocks.begin(b), blocks.end(b), c, x, scale.data(), shift.data(), y);
    }
  }
}

template <bool kRelu6>
void InferenceForward(int64_t m, int c, const float* x, const float* gamma, const float* beta,
                      const float* moving_mean, const float* moving_variance, float eps,
                      float* y) {
  std::vector<float> scale(c), shift(c);
  for (int ch = 0; ch < c; ++ch) {
    scale[ch] = gamma[ch] * InverseStd(moving_variance[ch], eps);
    shift[ch] = beta[ch] - moving_mean[ch] * scale[ch];
  }
  const RowBlocks blocks(m, c);
#pragma omp parallel for num_threads(ThreadsFor(m, c)) schedule(static)
  for (int64_t b = 0; b < blocks.count(); ++b) {
    ApplyRows<kRelu6>(blocks.begin(b), blocks.end(b), c, x, scale.data(), shift.data(), y);
  }
}

// With dy the gradient reaching the batch-norm output (d_y masked by 0 < a < 6 when
// kRelu6), x_hat = (x - mean) * inv_std and sums over the M rows of a channel:
//   d_beta += sum(dy), d_gamma += sum(dy * x_hat),
//   d_x = gamma * inv_std * (dy - sum(dy) / M - x_hat * sum(dy * x_hat) / M),
// evaluated as d_x = k_dy * dy + k_x * x + k_0 with per-channel constants.
template <bool kRelu6>
void Backward(int64_t m, int c, const float* x, const float* a, const float* gamma,
              const float* mean, const float* variance, float eps, const float* d_y,
              float* d_x, float* d_gamma, float* d_beta) {
  const RowBlocks blocks(m, c);
  double* const block_sums = BlockSumsScratch(blocks.count() * 2 * c);
  std::vector<float> k_dy(c), k_x(c), k_0(c);
  // Branch-free so that it vectorizes.
  const auto masked_d_y = [a, d_y](int64_t i) {
    if (!kRelu6) return d_y[i];
    const float out = a[i];
    const float d = d_y[i];
    return (out > 0.0f) & (out < 6.0f) ? d : 0.0f;
  };
  // dy and dy * (x - mean).
  const auto terms = [=](int64_t i, int ch) {
    const float dy = masked_d_y(i);
    return TermPair{dy, dy * (x[i] - mean[ch])};
  };
#pragma omp parallel num_threads(ThreadsFor(m, c))
  {
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks.count(); ++b) {
      double* sum = block_sums + b * 2 * c;
      SumTermsOverRows(blocks.begin(b), blocks.end(b), c, terms, sum, sum + c);
    }
#pragma omp for schedule(static)
    for (int ch = 0; ch < c; ++ch) {
      double sum_dy = 0, sum_dy_centered_x = 0;
      for (int64_t b = 0; b < blocks.count(); ++b) {
        sum_dy += block_sums[b * 2 * c + ch];
        sum_dy_centered_x += block_sums[b * 2 * c + c + ch];
      }
      const double inv_std = InverseStd(variance[ch], eps);
      d_beta[ch] += static_cast<float>(sum_dy);
      d_gamma[ch] += static_cast<float>(sum_dy_centered_x * inv_std);
      const double g = double{gamma[ch]} * inv_std;
      const double kx = -g * inv_std * inv_std * sum_dy_centered_x / m;
      k_dy[ch] = static_cast<float>(g);
      k_x[ch] = static_cast<float>(kx);
      k_0[ch] = static_cast<float>(-g * sum_dy / m - kx * mean[ch]);
    }
    const float* k_dy_data = k_dy.data();
    const float* k_x_data = k_x.data();
    const float* k_0_data = k_0.data();
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks.count(); ++b) {
      ForEachElement(blocks.begin(b), blocks.end(b), c, [=](int64_t i, int ch) {
        d_x[i] = std::fma(k_dy_data[ch], masked_d_y(i), std::fma(k_x_data[ch], x[i], k_0_data[ch]));
      });
    }
  }
}

}  // namespace

void BatchNormTrainingForward(int64_t m, int c, const float* x, const float* gamma,
                              const float* beta, float eps, float* y, float* mean,
                              float* variance) {
  TrainingForward<false>(m, c, x, gamma, beta, eps, y, mean, variance);
}

void BatchNormBackward(int64_t m, int c, const float* x, const float* gamma, const float* mean,
                       const float* variance, float eps, const float* d_y, float* d_x,
                       float* d_gamma, float* d_beta) {
  Backward<false>(m, c, x, nullptr, gamma, mean, variance, eps, d_y, d_x, d_gamma, d_beta);
}

void BatchNormInferenceForward(int64_t m, int c, const float* x, const float* gamma,
                               const float* beta, const float* moving_mean,
                               const float* moving_variance, float eps, float* y) {
  InferenceForward<false>(m, c, x, gamma, beta, moving_mean, moving_variance, eps, y);
}

void BatchNormRelu6TrainingForward(int64_t m, int c, const float* z, const float* gamma,
                                   const float* beta, float eps, float* a, float* mean,
                                   float* variance) {
  TrainingForward<true>(m, c, z, gamma, beta, eps, a, mean, variance);
}

void BatchNormRelu6Backward(int64_t m, int c, const float* z, const float* a,
                            const float* gamma, const float* mean, const float* variance,
                            float eps, const float* d_a, float* d_z, float* d_gamma,
                            float* d_beta) {
  Backward<true>(m, c, z, a, gamma, mean, variance, eps, d_a, d_z, d_gamma, d_beta);
}

void BatchNormRelu6InferenceForward(int64_t m, int c, const float* z, const float* gamma,
                                    const float* beta, const float* moving_mean,
                                    const float* moving_variance, float eps, float* a) {
  InferenceForward<true>(m, c, z, gamma, beta, moving_mean, moving_variance, eps, a);
}

}  // namespace mobilenet
