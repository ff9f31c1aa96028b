// Full (dense) KxK convolution over NHWC tensors, SAME padding, no bias.
// MobileNet-V1 uses it only for its first layer (3x3, stride 2).
#ifndef MOBILENET_MODEL_LAYERS_FULL_CONV_H_
#define MOBILENET_MODEL_LAYERS_FULL_CONV_H_

#include "model/layers/conv_geometry.h"

namespace mobilenet {

// input  [N, H, W, Cin]
// filter [K, K, Cin, Cout] (TensorFlow HWIO)
// output [N, Ho, Wo, Cout] (overwritten)
void FullConvForward(const ConvGeometry& g, const float* input, const float* filter,
                     float* output);

// d_output [N, Ho, Wo, Cout]. d_filter is accumulated (+=). d_input is overwritten;
// it may be null when the input gradient is not needed (the network's first layer).
void FullConvBackward(const ConvGeometry& g, const float* input, const float* filter,
                      const float* d_output, float* d_input, float* d_filter);

// Straightforward loops, the reference the fast kernels are tested against.
void FullConvForwardNaive(const ConvGeometry& g, const float* input, const float* filter,
                          float* output);
void FullConvBackwardNaive(const ConvGeometry& g, const float* input, const float* filter,
                           const float* d_output, float* d_input, float* d_filter);

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_LAYERS_FULL_CONV_H_
