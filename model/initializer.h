// Deterministic weight initialization. Every element's value depends only on the seed,
// the tensor's name and the element's index, so any slice of a tensor (a parameter-server
// shard) can be initialized on its own and equals the same range of the whole.
#ifndef MOBILENET_MODEL_INITIALIZER_H_
#define MOBILENET_MODEL_INITIALIZER_H_

#include <cstdint>

#include "model/parameter_layout.h"

namespace mobilenet {

// Writes elements [begin, end) of `view` (indices within the tensor) into out[0, end-begin).
// Convolution weights: truncated normal (2 sigma), He scaling sqrt(2 / fan_in);
// fully-connected weights: truncated normal, sqrt(1 / fan_in); gamma 1; beta, biases and
// moving means 0; moving variances 1. The scalings are the standard deviation after
// truncation (as TensorFlow's VarianceScaling); fan_in is kh * kw * Cin for full and
// pointwise convolutions, kh * kw for depthwise filters, Din for the classifier.
// Requires 0 <= begin <= end <= view.size (checked).
void InitializeRange(const TensorView& view, uint64_t seed, int64_t begin, int64_t end,
                     float* out);

// Initializes every tensor of `layout` into buffer[0, layout.total_size()).
void InitializeAll(const ParameterLayout& layout, uint64_t seed, float* buffer);

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_INITIALIZER_H_
