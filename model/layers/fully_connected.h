// Fully connected layer with bias: output = input x weights + bias.
#ifndef MOBILENET_MODEL_LAYERS_FULLY_CONNECTED_H_
#define MOBILENET_MODEL_LAYERS_FULLY_CONNECTED_H_

namespace mobilenet {

// input [N, Din], weights [Din, Dout], bias [Dout], output [N, Dout] (overwritten).
void FullyConnectedForward(int n, int din, int dout, const float* input, const float* weights,
                           const float* bias, float* output);

// d_weights and d_bias accumulated (+=); d_input overwritten (may be null).
void FullyConnectedBackward(int n, int din, int dout, const float* input, const float* weights,
                            const float* d_output, float* d_input, float* d_weights,
                            float* d_bias);

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_LAYERS_FULLY_CONNECTED_H_
