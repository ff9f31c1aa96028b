// TensorFlow's MomentumOptimizer (use_nesterov=false):
//   accumulation = momentum * accumulation + g;  w -= lr * accumulation.
// Slot "momentum" (the accumulation) starts at 0.
#ifndef MOBILENET_COMMON_MOMENTUM_OPTIMIZER_H_
#define MOBILENET_COMMON_MOMENTUM_OPTIMIZER_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "common/optimizer.h"

namespace mobilenet {

class MomentumOptimizer : public Optimizer {
 public:
  // size >= 0, momentum in [0, 1) (CreateOptimizer validates).
  MomentumOptimizer(int64_t size, float momentum);

  OptimizerKind kind() const override { return OptimizerKind::kMomentum; }
  int64_t size() const override { return static_cast<int64_t>(accumulation_.size()); }
  float Apply(float learning_rate, int64_t begin, int64_t end, const float* gradient,
              float* weights) override;
  // Finite when the gradients, weights and accumulation are within kSafeMagnitude and so
  // is lr * (accumulation + gradient), the largest step.
  bool UpdateStaysFinite(float learning_rate, float max_abs_gradient,
                         float max_abs_weight) const override;
  std::optional<NonFiniteUpdate> FindNonFiniteUpdate(float learning_rate, const float* gradient,
                                                     const float* weights) const override;
  std::vector<OptimizerSlot> slots() override;
  void SlotsChanged() override;

 private:
  float momentum_;
  std::vector<float> accumulation_;
  float max_abs_accumulation_ = 0.0f;  // upper bound over the whole range
};

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_MOMENTUM_OPTIMIZER_H_
