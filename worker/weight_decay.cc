#include "worker/weight_decay.h"

namespace mobilenet {

bool TakesWeightDecay(TensorRole role) {
  return role == TensorRole::kConvWeights || role == TensorRole::kFullyConnectedWeights;
}

std::vector<IndexRange> WeightDecayRanges(const ParameterLayout& layout) {
  std::vector<IndexRange> ranges;
  for (const TensorView& view : layout.views()) {
    if (TakesWeightDecay(view.role)) ranges.push_back({view.offset, view.offset + view.size});
  }
  return ranges;
}

}  // namespace mobilenet
