#include "model/layers/pointwise_conv.h"

#include "model/layers/gemm.h"

namespace mobilenet {

void PointwiseConvForward(int64_t m, int cin, int cout, const float* input,
                          const float* weights, float* output) {
  // [M, Cin] x [Cin, Cout] -> [M, Cout]
  Gemm(MatrixOp::kAsIs, MatrixOp::kAsIs, m, cout, cin, input, weights, 0.0f, output);
}

void PointwiseConvBackward(int64_t m, int cin, int cout, const float* input,
                           const float* weights, const float* d_output, float* d_input,
                           float* d_weights) {
  // d_input [M, Cin] = d_output [M, Cout] x weights^T [Cout, Cin]
  if (d_input != nullptr) {
    Gemm(MatrixOp::kAsIs, MatrixOp::kTransposed, m, cin, cout, d_output, weights, 0.0f,
         d_input);
  }
  // d_weights [Cin, Cout] += input^T [Cin, M] x d_output [M, Cout]
  Gemm(MatrixOp::kTransposed, MatrixOp::kAsIs, cin, cout, m, input, d_output, 1.0f,
       d_weights);
}

void PointwiseConvForwardNaive(int64_t m, int cin, int cout, const float* input,
                               const float* weights, float* output) {
  for (int64_t i = 0; i < m; ++i) {
    for (int o = 0; o < cout; ++o) {
      double sum = 0;
      for (int c = 0; c < cin; ++c) sum += double{input[i * cin + c]} * weights[c * cout + o];
      output[i * cout + o] = static_cast<float>(sum);
    }
  }
}

void PointwiseConvBackwardNaive(int64_t m, int cin, int cout, const float* input,
                                const float* weights, const float* d_output, float* d_input,
                                float* d_weights) {
  if (d_input != nullptr) {
    for (int64_t i = 0; i < m; ++i) {
      for (int c = 0; c < cin; ++c) {
        double sum = 0;
        for (int o = 0; o < cout; ++o) {
          sum += double{d_output[i * cout + o]} * weights[c * cout + o];
        }
        d_input[i * cin + c] = static_cast<float>(sum);
      }
    }
  }
  for (int c = 0; c < cin; ++c) {
    for (int o = 0; o < cout; ++o) {
      double sum = 0;
      for (int64_t i = 0; i < m; ++i) sum += double{input[i * cin + c]} * d_output[i * cout + o];
      d_weights[c * cout + o] += static_cast<float>(sum);
    }
  }
}

}  // namespace mobilenet
