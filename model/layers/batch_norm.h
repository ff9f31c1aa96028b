// Batch normalization over the channel (last) axis of an [M, C] tensor (M = N * H * W),
// and the fused batch norm + ReLU6 the network runs. Epsilon is a parameter
// (MobileNet-V1 uses 0.001).
#ifndef MOBILENET_MODEL_LAYERS_BATCH_NORM_H_
#define MOBILENET_MODEL_LAYERS_BATCH_NORM_H_

#include <cstdint>

namespace mobilenet {

// Training mode: batch mean and (biased, divide by M) variance per channel are written to
// `mean` [C] and `variance` [C]; y = gamma * (x - mean) / sqrt(variance + eps) + beta.
// y [M, C] overwritten. The caller folds mean/variance into moving averages (for which the
// unbiased variance is variance * M / (M - 1), as TensorFlow does).
void BatchNormTrainingForward(int64_t m, int c, const float* x, const float* gamma,
                              const float* beta, float eps, float* y, float* mean,
                              float* variance);

// Gradient of the training-mode forward. d_x overwritten; d_gamma, d_beta accumulated (+=).
void BatchNormBackward(int64_t m, int c, const float* x, const float* gamma, const float* mean,
                       const float* variance, float eps, const float* d_y, float* d_x,
                       float* d_gamma, float* d_beta);

// Inference mode with moving statistics. y overwritten (may alias x).
void BatchNormInferenceForward(int64_t m, int c, const float* x, const float* gamma,
                               const float* beta, const float* moving_mean,
                               const float* moving_variance, float eps, float* y);

// Fused training forward: a = relu6(batchnorm(z)) with batch statistics (written to
// mean/variance as above). a [M, C] overwritten.
void BatchNormRelu6TrainingForward(int64_t m, int c, const float* z, const float* gamma,
                                   const float* beta, float eps, float* a, float* mean,
                                   float* variance);

// Fused backward: from z (the batch-norm input), a (the ReLU6 output, whose values in (0, 6)
// mark where the gradient passes) and d_a, computes d_z (overwritten; may alias d_a) and
// accumulates d_gamma, d_beta.
void BatchNormRelu6Backward(int64_t m, int c, const float* z, const float* a,
                            const float* gamma, const float* mean, const float* variance,
                            float eps, const float* d_a, float* d_z, float* d_gamma,
                            float* d_beta);

// Fused inference forward: a = relu6(batchnorm(z)) with moving statistics; a may alias z.
void BatchNormRelu6InferenceForward(int64_t m, int c, const float* z, const float* gamma,
                                    const float* beta, const float* moving_mean,
                                    const float* moving_variance, float eps, float* a);

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_LAYERS_BATCH_NORM_H_
