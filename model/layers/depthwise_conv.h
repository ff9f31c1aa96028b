// 3x3 depthwise convolution (one filter per channel, multiplier 1) over NHWC tensors,
// SAME padding, stride 1 or 2, no bias. Vectorized over channels.
#ifndef MOBILENET_MODEL_LAYERS_DEPTHWISE_CONV_H_
#define MOBILENET_MODEL_LAYERS_DEPTHWISE_CONV_H_

#include "model/layers/conv_geometry.h"

namespace mobilenet {

// g.kernel == 3, g.in_channels == g.out_channels == C.
// input  [N, H, W, C]
// filter [3, 3, C] (TensorFlow [3, 3, C, 1])
// output [N, Ho, Wo, C] (overwritten)
void DepthwiseConvForward(const ConvGeometry& g, const float* input, const float* filter,
                          float* output);

// d_filter is accumulated (+=); d_input is overwritten (may be null if not needed).
void DepthwiseConvBackward(const ConvGeometry& g, const float* input, const float* filter,
                           const float* d_output, float* d_input, float* d_filter);

// Reference loops.
void DepthwiseConvForwardNaive(const ConvGeometry& g, const float* input, const float* filter,
                               float* output);
void DepthwiseConvBackwardNaive(const ConvGeometry& g, const float* input, const float* filter,
                                const float* d_output, float* d_input, float* d_filter);

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_LAYERS_DEPTHWISE_CONV_H_
