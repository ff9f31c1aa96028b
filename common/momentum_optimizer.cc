#include "common/momentum_optimizer.h"

#include "common/check.h"

namespace mobilenet {

MomentumOptimizer::MomentumOptimizer(int64_t size, float momentum)
    : momentum_(momentum), accumulation_(size, 0.0f) {}

void MomentumOptimizer::Apply(float learning_rate, int64_t begin, int64_t end,
                              const float* gradient, float* weights) {
  MOBILENET_CHECK(0 <= begin && begin <= end && end <= size());
  float* accumulation = accumulation_.data();
  for (int64_t i = begin; i < end; ++i) {
    accumulation[i] = momentum_ * accumulation[i] + gradient[i];
    weights[i] -= learning_rate * accumulation[i];
  }
}

std::vector<OptimizerSlot> MomentumOptimizer::slots() {
  return {{"momentum", absl::MakeSpan(accumulation_)}};
}

}  // namespace mobilenet
