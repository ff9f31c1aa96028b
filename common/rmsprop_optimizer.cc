#include "common/rmsprop_optimizer.h"

#include <cmath>

#include "common/check.h"

namespace mobilenet {

RmsPropOptimizer::RmsPropOptimizer(int64_t size, float rho, float momentum, float epsilon)
    : rho_(rho),
      momentum_(momentum),
      epsilon_(epsilon),
      mean_square_(size, 1.0f),
      moment_(size, 0.0f) {}

void RmsPropOptimizer::Apply(float learning_rate, int64_t begin, int64_t end, const float* gradient,
                             float* weights) {
  MOBILENET_CHECK(0 <= begin && begin <= end && end <= size());
  // Distinct arrays (the slots are this object's own); restrict lets the loop vectorize.
  float* __restrict ms = mean_square_.data();
  float* __restrict mom = moment_.data();
  float* __restrict w = weights;
  const float* __restrict g = gradient;
  const float rho = rho_, one_minus_rho = 1.0f - rho_, momentum = momentum_, epsilon = epsilon_;
  for (int64_t i = begin; i < end; ++i) {
    ms[i] = rho * ms[i] + one_minus_rho * g[i] * g[i];
    mom[i] = momentum * mom[i] + learning_rate * g[i] / std::sqrt(ms[i] + epsilon);
    w[i] -= mom[i];
  }
}

std::vector<OptimizerSlot> RmsPropOptimizer::slots() {
  return {{"rms", absl::MakeSpan(mean_square_)}, {"momentum", absl::MakeSpan(moment_)}};
}

}  // namespace mobilenet
