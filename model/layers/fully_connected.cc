#include "model/layers/fully_connected.h"

#include "model/layers/gemm.h"

namespace mobilenet {

void FullyConnectedForward(int n, int din, int dout, const float* input, const float* weights,
                           const float* bias, float* output) {
  // output [N, Dout] = bias broadcast + input [N, Din] x weights [Din, Dout]
  for (int i = 0; i < n; ++i) {
    for (int o = 0; o < dout; ++o) output[int64_t{i} * dout + o] = bias[o];
  }
  Gemm(MatrixOp::kAsIs, MatrixOp::kAsIs, n, dout, din, input, weights, 1.0f, output);
}

void FullyConnectedBackward(int n, int din, int dout, const float* input, const float* weights,
                            const float* d_output, float* d_input, float* d_weights,
                            float* d_bias) {
  // d_input [N, Din] = d_output [N, Dout] x weights^T [Dout, Din]
  if (d_input != nullptr) {
    Gemm(MatrixOp::kAsIs, MatrixOp::kTransposed, n, din, dout, d_output, weights, 0.0f,
         d_input);
  }
  // d_weights [Din, Dout] += input^T [Din, N] x d_output [N, Dout]
  Gemm(MatrixOp::kTransposed, MatrixOp::kAsIs, din, dout, n, input, d_output, 1.0f, d_weights);
  // d_bias [Dout] += column sums of d_output
  for (int i = 0; i < n; ++i) {
    for (int o = 0; o < dout; ++o) d_bias[o] += d_output[int64_t{i} * dout + o];
  }
}

}  // namespace mobilenet
