#include "model/layers/global_avg_pool.h"

#include <cstdint>
#include <vector>

#include "model/layers/compute_threads.h"

namespace mobilenet {

void GlobalAvgPoolForward(int n, int h, int w, int c, const float* input, float* output) {
  const int64_t pixels = int64_t{h} * w;
  const float inv = 1.0f / static_cast<float>(pixels);
#pragma omp parallel for num_threads(n > 1 ? ComputeThreads() : 1) schedule(static)
  for (int b = 0; b < n; ++b) {
    // [H * W, C] -> [C]
    std::vector<float> sum(c, 0.0f);
    const float* image = input + b * pixels * c;
    for (int64_t p = 0; p < pixels; ++p) {
      const float* row = image + p * c;
#pragma omp simd
      for (int ch = 0; ch < c; ++ch) sum[ch] += row[ch];
    }
    for (int ch = 0; ch < c; ++ch) output[int64_t{b} * c + ch] = sum[ch] * inv;
  }
}

void GlobalAvgPoolBackward(int n, int h, int w, int c, const float* d_output, float* d_input) {
  const int64_t pixels = int64_t{h} * w;
  const float inv = 1.0f / static_cast<float>(pixels);
#pragma omp parallel for num_threads(n > 1 ? ComputeThreads() : 1) schedule(static)
  for (int b = 0; b < n; ++b) {
    const float* d_out = d_output + int64_t{b} * c;
    float* image = d_input + b * pixels * c;
    for (int64_t p = 0; p < pixels; ++p) {
#pragma omp simd
      for (int ch = 0; ch < c; ++ch) image[p * c + ch] = d_out[ch] * inv;
    }
  }
}

}  // namespace mobilenet
