// Plain stochastic gradient descent: w -= lr * g. No slots.
#ifndef MOBILENET_COMMON_SGD_OPTIMIZER_H_
#define MOBILENET_COMMON_SGD_OPTIMIZER_H_

#include <cstdint>
#include <vector>

#include "common/optimizer.h"

namespace mobilenet {

class SgdOptimizer : public Optimizer {
 public:
  // size >= 0.
  explicit SgdOptimizer(int64_t size);

  OptimizerKind kind() const override { return OptimizerKind::kSgd; }
  int64_t size() const override { return size_; }
  void Apply(float learning_rate, int64_t begin, int64_t end, const float* gradient,
             float* weights) override;
  std::vector<OptimizerSlot> slots() override { return {}; }

 private:
  int64_t size_;
};

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_SGD_OPTIMIZER_H_
