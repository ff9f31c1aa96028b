#include "common/sgd_optimizer.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "common/float_bits.h"

namespace mobilenet {

SgdOptimizer::SgdOptimizer(int64_t size) : size_(size) {}

float SgdOptimizer::Apply(float learning_rate, int64_t begin, int64_t end, const float* gradient,
                          float* weights) {
  MOBILENET_CHECK(0 <= begin && begin <= end && end <= size_);
  uint32_t w_bits = 0;
  for (int64_t i = begin; i < end; ++i) {
    weights[i] -= learning_rate * gradient[i];
    w_bits = std::max(w_bits, AbsBits(weights[i]));
  }
  return FloatFromBits(w_bits);
}

bool SgdOptimizer::UpdateStaysFinite(float learning_rate, float max_abs_gradient,
                                     float max_abs_weight) const {
  return max_abs_weight <= kSafeMagnitude && learning_rate * max_abs_gradient <= kSafeMagnitude;
}

std::optional<NonFiniteUpdate> SgdOptimizer::FindNonFiniteUpdate(float learning_rate,
                                                                 const float* gradient,
                                                                 const float* weights) const {
  for (int64_t i = 0; i < size_; ++i) {
    const float w = weights[i] - learning_rate * gradient[i];
    if (!std::isfinite(w)) return NonFiniteUpdate{i, "weight", w};
  }
  return std::nullopt;
}

}  // namespace mobilenet
