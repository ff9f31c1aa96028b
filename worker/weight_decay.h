// Which tensors take L2 weight decay: full and pointwise convolution weights and the
// classifier weights, as TensorFlow-slim's MobileNet-V1 regularizes them; never depthwise
// filters (too few parameters to overfit, per the paper), batch-norm parameters, biases
// or moving statistics.
#ifndef MOBILENET_WORKER_WEIGHT_DECAY_H_
#define MOBILENET_WORKER_WEIGHT_DECAY_H_

#include <vector>

#include "common/gradient_ops.h"
#include "model/parameter_layout.h"

namespace mobilenet {

// True for kConvWeights and kFullyConnectedWeights.
bool TakesWeightDecay(TensorRole role);

// The flat-buffer ranges of `layout`'s tensors that take weight decay, in layout order;
// pass to AddWeightDecay.
std::vector<IndexRange> WeightDecayRanges(const ParameterLayout& layout);

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_WEIGHT_DECAY_H_
