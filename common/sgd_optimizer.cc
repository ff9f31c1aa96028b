#include "common/sgd_optimizer.h"

#include "common/check.h"

namespace mobilenet {

SgdOptimizer::SgdOptimizer(int64_t size) : size_(size) {}

void SgdOptimizer::Apply(float learning_rate, int64_t begin, int64_t end, const float* gradient,
                         float* weights) {
  MOBILENET_CHECK(0 <= begin && begin <= end && end <= size_);
  for (int64_t i = begin; i < end; ++i) weights[i] -= learning_rate * gradient[i];
}

}  // namespace mobilenet
