// TensorFlow's MomentumOptimizer (use_nesterov=false):
//   accumulation = momentum * accumulation + g;  w -= lr * accumulation.
// Slot "momentum" (the accumulation) starts at 0.
#ifndef MOBILENET_COMMON_MOMENTUM_OPTIMIZER_H_
#define MOBILENET_COMMON_MOMENTUM_OPTIMIZER_H_

#include <cstdint>
#include <vector>

#include "common/optimizer.h"

namespace mobilenet {

class MomentumOptimizer : public Optimizer {
 public:
  // size >= 0, momentum in [0, 1) (CreateOptimizer validates).
  MomentumOptimizer(int64_t size, float momentum);

  OptimizerKind kind() const override { return OptimizerKind::kMomentum; }
  int64_t size() const override { return static_cast<int64_t>(accumulation_.size()); }
  void Apply(float learning_rate, int64_t begin, int64_t end, const float* gradient,
             float* weights) override;
  std::vector<OptimizerSlot> slots() override;

 private:
  float momentum_;
  std::vector<float> accumulation_;
};

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_MOMENTUM_OPTIMIZER_H_
