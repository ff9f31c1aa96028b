// 1x1 (pointwise) convolution over NHWC tensors: one GEMM [M, Cin] x [Cin, Cout]
// with M = N * H * W. No bias.
#ifndef MOBILENET_MODEL_LAYERS_POINTWISE_CONV_H_
#define MOBILENET_MODEL_LAYERS_POINTWISE_CONV_H_

#include <cstdint>

namespace mobilenet {

// input [M, Cin], weights [Cin, Cout] (TensorFlow [1, 1, Cin, Cout]), output [M, Cout]
// (overwritten).
void PointwiseConvForward(int64_t m, int cin, int cout, const float* input,
                          const float* weights, float* output);

// d_weights accumulated (+=); d_input overwritten (may be null).
void PointwiseConvBackward(int64_t m, int cin, int cout, const float* input,
                           const float* weights, const float* d_output, float* d_input,
                           float* d_weights);

void PointwiseConvForwardNaive(int64_t m, int cin, int cout, const float* input,
                               const float* weights, float* output);
void PointwiseConvBackwardNaive(int64_t m, int cin, int cout, const float* input,
                                const float* weights, const float* d_output, float* d_input,
                                float* d_weights);

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_LAYERS_POINTWISE_CONV_H_
