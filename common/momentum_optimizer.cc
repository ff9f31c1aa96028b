#include "common/momentum_optimizer.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "common/float_bits.h"
#include "common/gradient_ops.h"

namespace mobilenet {
namespace {

// One element's update, shared by Apply and FindNonFiniteUpdate.
struct MomentumStep {
  float momentum, learning_rate;

  void operator()(float g, float& accumulation, float& w) const {
    accumulation = momentum * accumulation + g;
    w -= learning_rate * accumulation;
  }
};

constexpr int64_t kBlock = 2048;

}  // namespace

MomentumOptimizer::MomentumOptimizer(int64_t size, float momentum)
    : momentum_(momentum), accumulation_(size, 0.0f) {}

float MomentumOptimizer::Apply(float learning_rate, int64_t begin, int64_t end,
                               const float* gradient, float* weights) {
  MOBILENET_CHECK(0 <= begin && begin <= end && end <= size());
  const MomentumStep step{momentum_, learning_rate};
  float* __restrict accumulation = accumulation_.data();
  float* __restrict w = weights;
  const float* __restrict g = gradient;
  uint32_t accumulation_bits = 0, w_bits = 0;
  for (int64_t i = begin; i < end; ++i) {
    step(g[i], accumulation[i], w[i]);
    accumulation_bits = std::max(accumulation_bits, AbsBits(accumulation[i]));
    w_bits = std::max(w_bits, AbsBits(w[i]));
  }
  const bool whole = begin == 0 && end == size();
  max_abs_accumulation_ = whole ? FloatFromBits(accumulation_bits)
                                : std::max(max_abs_accumulation_, FloatFromBits(accumulation_bits));
  return FloatFromBits(w_bits);
}

bool MomentumOptimizer::UpdateStaysFinite(float learning_rate, float max_abs_gradient,
                                          float max_abs_weight) const {
  return max_abs_gradient <= kSafeMagnitude && max_abs_accumulation_ <= kSafeMagnitude &&
         max_abs_weight <= kSafeMagnitude &&
         learning_rate * (max_abs_accumulation_ + max_abs_gradient) <= kSafeMagnitude;
}

std::optional<NonFiniteUpdate> MomentumOptimizer::FindNonFiniteUpdate(
    float learning_rate, const float* gradient, const float* weights) const {
  const MomentumStep step{momentum_, learning_rate};
  const int64_t n = size();
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = std::min(n, start + kBlock);
    uint32_t bad = 0;
    for (int64_t i = start; i < end; ++i) {
      float accumulation = accumulation_[i], w = weights[i];
      step(gradient[i], accumulation, w);
      bad |= NonFiniteBit(accumulation) | NonFiniteBit(w);
    }
    if (bad == 0) continue;
    for (int64_t i = start; i < end; ++i) {
      float accumulation = accumulation_[i], w = weights[i];
      step(gradient[i], accumulation, w);
      if (!std::isfinite(accumulation)) return NonFiniteUpdate{i, "momentum", accumulation};
      if (!std::isfinite(w)) return NonFiniteUpdate{i, "weight", w};
    }
  }
  return std::nullopt;
}

std::vector<OptimizerSlot> MomentumOptimizer::slots() {
  return {{"momentum", absl::MakeSpan(accumulation_)}};
}

void MomentumOptimizer::SlotsChanged() { max_abs_accumulation_ = MaxAbs(accumulation_); }

}  // namespace mobilenet
