#include "common/rmsprop_optimizer.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "common/float_bits.h"
#include "common/gradient_ops.h"

namespace mobilenet {
namespace {

// One element's update, shared by Apply and FindNonFiniteUpdate so that the check
// computes exactly what the update would store.
struct RmsPropStep {
  float rho, one_minus_rho, momentum, epsilon, learning_rate;

  void operator()(float g, float& ms, float& mom, float& w) const {
    ms = rho * ms + one_minus_rho * g * g;
    mom = momentum * mom + learning_rate * g / std::sqrt(ms + epsilon);
    w -= mom;
  }
};

constexpr int64_t kBlock = 2048;

}  // namespace

RmsPropOptimizer::RmsPropOptimizer(int64_t size, float rho, float momentum, float epsilon)
    : rho_(rho),
      momentum_(momentum),
      epsilon_(epsilon),
      mean_square_(size, 1.0f),
      moment_(size, 0.0f) {}

float RmsPropOptimizer::Apply(float learning_rate, int64_t begin, int64_t end,
                              const float* gradient, float* weights) {
  MOBILENET_CHECK(0 <= begin && begin <= end && end <= size());
  const RmsPropStep step{rho_, 1.0f - rho_, momentum_, epsilon_, learning_rate};
  // Distinct arrays (the slots are this object's own); restrict lets the loop vectorize.
  float* __restrict ms = mean_square_.data();
  float* __restrict mom = moment_.data();
  float* __restrict w = weights;
  const float* __restrict g = gradient;
  uint32_t ms_bits = 0, mom_bits = 0, w_bits = 0;
  for (int64_t i = begin; i < end; ++i) {
    step(g[i], ms[i], mom[i], w[i]);
    ms_bits = std::max(ms_bits, AbsBits(ms[i]));
    mom_bits = std::max(mom_bits, AbsBits(mom[i]));
    w_bits = std::max(w_bits, AbsBits(w[i]));
  }
  // A whole-range update knows the bounds exactly; a partial one can only raise them.
  const bool whole = begin == 0 && end == size();
  max_abs_mean_square_ = whole ? FloatFromBits(ms_bits)
                               : std::max(max_abs_mean_square_, FloatFromBits(ms_bits));
  max_abs_moment_ = whole ? FloatFromBits(mom_bits)
                          : std::max(max_abs_moment_, FloatFromBits(mom_bits));
  return FloatFromBits(w_bits);
}

bool RmsPropOptimizer::UpdateStaysFinite(float learning_rate, float max_abs_gradient,
                                         float max_abs_weight) const {
  const float step_ratio = std::min(1.0f / std::sqrt(1.0f - rho_),
                                    max_abs_gradient / std::sqrt(epsilon_));
  return max_abs_gradient <= std::sqrt(kSafeMagnitude) &&
         max_abs_mean_square_ <= kSafeMagnitude && max_abs_moment_ <= kSafeMagnitude &&
         max_abs_weight <= kSafeMagnitude && learning_rate * step_ratio <= kSafeMagnitude;
}

std::optional<NonFiniteUpdate> RmsPropOptimizer::FindNonFiniteUpdate(float learning_rate,
                                                                     const float* gradient,
                                                                     const float* weights) const {
  const RmsPropStep step{rho_, 1.0f - rho_, momentum_, epsilon_, learning_rate};
  const int64_t n = size();
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = std::min(n, start + kBlock);
    uint32_t bad = 0;
    for (int64_t i = start; i < end; ++i) {
      float ms = mean_square_[i], mom = moment_[i], w = weights[i];
      step(gradient[i], ms, mom, w);
      bad |= NonFiniteBit(ms) | NonFiniteBit(mom) | NonFiniteBit(w);
    }
    if (bad == 0) continue;
    for (int64_t i = start; i < end; ++i) {
      float ms = mean_square_[i], mom = moment_[i], w = weights[i];
      step(gradient[i], ms, mom, w);
      if (!std::isfinite(ms)) return NonFiniteUpdate{i, "rms", ms};
      if (!std::isfinite(mom)) return NonFiniteUpdate{i, "momentum", mom};
      if (!std::isfinite(w)) return NonFiniteUpdate{i, "weight", w};
    }
  }
  return std::nullopt;
}

std::vector<OptimizerSlot> RmsPropOptimizer::slots() {
  return {{"rms", absl::MakeSpan(mean_square_), 0.0f},
          {"momentum", absl::MakeSpan(moment_)}};
}

void RmsPropOptimizer::SlotsChanged() {
  max_abs_mean_square_ = MaxAbs(mean_square_);
  max_abs_moment_ = MaxAbs(moment_);
}

}  // namespace mobilenet
