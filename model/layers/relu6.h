// ReLU6: y = min(max(x, 0), 6).
#ifndef MOBILENET_MODEL_LAYERS_RELU6_H_
#define MOBILENET_MODEL_LAYERS_RELU6_H_

#include <cstdint>

namespace mobilenet {

// y overwritten; may alias x.
void Relu6Forward(int64_t n, const float* x, float* y);

// d_x = d_y where 0 < y < 6, else 0. `y` is the forward output. d_x may alias d_y.
void Relu6Backward(int64_t n, const float* y, const float* d_y, float* d_x);

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_LAYERS_RELU6_H_
