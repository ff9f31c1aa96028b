// TensorFlow 1's RMSPropOptimizer (centered=false), exactly:
//   ms  = rho * ms + (1 - rho) * g^2
//   mom = momentum * mom + lr * g / sqrt(ms + epsilon)
//   w  -= mom
// Slot "rms" (ms) starts at 1.0, slot "momentum" (mom) at 0. TensorFlow-slim trains
// MobileNet-V1 with rho 0.9, momentum 0.9, epsilon 1.0.
#ifndef MOBILENET_COMMON_RMSPROP_OPTIMIZER_H_
#define MOBILENET_COMMON_RMSPROP_OPTIMIZER_H_

#include <cstdint>
#include <vector>

#include "common/optimizer.h"

namespace mobilenet {

class RmsPropOptimizer : public Optimizer {
 public:
  // size >= 0; rho and momentum in [0, 1), epsilon > 0 (CreateOptimizer validates).
  RmsPropOptimizer(int64_t size, float rho, float momentum, float epsilon);

  OptimizerKind kind() const override { return OptimizerKind::kRmsProp; }
  int64_t size() const override { return static_cast<int64_t>(mean_square_.size()); }
  void Apply(float learning_rate, int64_t begin, int64_t end, const float* gradient,
             float* weights) override;
  std::vector<OptimizerSlot> slots() override;

 private:
  float rho_;
  float momentum_;
  float epsilon_;
  std::vector<float> mean_square_;  // slot "rms"
  std::vector<float> moment_;       // slot "momentum"
};

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_RMSPROP_OPTIMIZER_H_
