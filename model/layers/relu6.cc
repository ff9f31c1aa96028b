#include "model/layers/relu6.h"

#include <algorithm>

#include "model/layers/compute_threads.h"

namespace mobilenet {
namespace {

// Elementwise passes smaller than this run on one thread.
constexpr int64_t kMinParallelElements = int64_t{1} << 16;

}  // namespace

void Relu6Forward(int64_t n, const float* x, float* y) {
  const int threads = n < kMinParallelElements ? 1 : ComputeThreads();
#pragma omp parallel for simd num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(x[i], 0.0f), 6.0f);
}

void Relu6Backward(int64_t n, const float* y, const float* d_y, float* d_x) {
  const int threads = n < kMinParallelElements ? 1 : ComputeThreads();
#pragma omp parallel for simd num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) d_x[i] = (y[i] > 0.0f && y[i] < 6.0f) ? d_y[i] : 0.0f;
}

}  // namespace mobilenet
