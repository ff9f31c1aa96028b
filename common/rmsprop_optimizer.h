// TensorFlow 1's RMSPropOptimizer (centered=false), exactly:
//   ms  = rho * ms + (1 - rho) * g^2
//   mom = momentum * mom + lr * g / sqrt(ms + epsilon)
//   w  -= mom
// Slot "rms" (ms) starts at 1.0, slot "momentum" (mom) at 0. TensorFlow-slim trains
// MobileNet-V1 with rho 0.9, momentum 0.9, epsilon 1.0.
#ifndef MOBILENET_COMMON_RMSPROP_OPTIMIZER_H_
#define MOBILENET_COMMON_RMSPROP_OPTIMIZER_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "common/optimizer.h"

namespace mobilenet {

class RmsPropOptimizer : public Optimizer {
 public:
  // size >= 0; rho and momentum in [0, 1), epsilon > 0 (CreateOptimizer validates).
  RmsPropOptimizer(int64_t size, float rho, float momentum, float epsilon);

  OptimizerKind kind() const override { return OptimizerKind::kRmsProp; }
  int64_t size() const override { return static_cast<int64_t>(mean_square_.size()); }
  float Apply(float learning_rate, int64_t begin, int64_t end, const float* gradient,
              float* weights) override;
  // Finite when every input and slot bound is within kSafeMagnitude (gradients within its
  // square root): ms stays below the larger of its bound and g^2, and since ms >= (1 - rho)
  // g^2, each step moves mom by at most lr / sqrt(1 - rho) (and lr * |g| / sqrt(epsilon)).
  bool UpdateStaysFinite(float learning_rate, float max_abs_gradient,
                         float max_abs_weight) const override;
  std::optional<NonFiniteUpdate> FindNonFiniteUpdate(float learning_rate, const float* gradient,
                                                     const float* weights) const override;
  // "rms" (never below 0), "momentum".
  std::vector<OptimizerSlot> slots() override;
  void SlotsChanged() override;

 private:
  float rho_;
  float momentum_;
  float epsilon_;
  std::vector<float> mean_square_;  // slot "rms"
  std::vector<float> moment_;       // slot "momentum"
  // Upper bounds of |ms| and |mom| over the whole range.
  float max_abs_mean_square_ = 1.0f;
  float max_abs_moment_ = 0.0f;
};

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_RMSPROP_OPTIMIZER_H_
