// Plain stochastic gradient descent: w -= lr * g. No slots.
#ifndef MOBILENET_COMMON_SGD_OPTIMIZER_H_
#define MOBILENET_COMMON_SGD_OPTIMIZER_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "common/optimizer.h"

namespace mobilenet {

class SgdOptimizer : public Optimizer {
 public:
  // size >= 0.
  explicit SgdOptimizer(int64_t size);

  OptimizerKind kind() const override { return OptimizerKind::kSgd; }
  int64_t size() const override { return size_; }
  float Apply(float learning_rate, int64_t begin, int64_t end, const float* gradient,
              float* weights) override;
  // Finite when the weights and lr * |g| are within kSafeMagnitude.
  bool UpdateStaysFinite(float learning_rate, float max_abs_gradient,
                         float max_abs_weight) const override;
  std::optional<NonFiniteUpdate> FindNonFiniteUpdate(float learning_rate, const float* gradient,
                                                     const float* weights) const override;
  std::vector<OptimizerSlot> slots() override { return {}; }
  void SlotsChanged() override {}

 private:
  int64_t size_;
};

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_SGD_OPTIMIZER_H_
