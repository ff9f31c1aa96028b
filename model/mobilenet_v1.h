// The MobileNet-V1 network: forward and backward passes over an Architecture, reading
// weights from one flat buffer (ParameterLayout) and writing gradients into another of the
// same layout. Owns only its activation workspace; weights live with the caller (a
// parameter store). Not thread-safe: one instance per training thread.
#ifndef MOBILENET_MODEL_MOBILENET_V1_H_
#define MOBILENET_MODEL_MOBILENET_V1_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/architecture.h"
#include "model/parameter_layout.h"

namespace mobilenet {

inline constexpr float kBatchNormEpsilon = 0.001f;

// Tensor names follow TensorFlow-slim's MobileNet-V1:
//   <conv>/weights or <conv>/depthwise_weights, <conv>/BatchNorm/gamma, .../beta,
//   .../moving_mean, .../moving_variance, <classifier>/weights, <classifier>/biases.
// Trainable tensors form parameter_layout(); moving statistics form state_layout().
// Batch statistics of a training step use state_layout() too (mean in the moving_mean
// slot, biased variance in the moving_variance slot).
ParameterLayout BuildParameterLayout(const Architecture& arch);
ParameterLayout BuildStateLayout(const Architecture& arch);

struct TrainStepResult {
  float loss = 0;   // mean softmax cross-entropy over the batch (with label smoothing)
  int correct = 0;  // argmax(logits) == label count
};

class MobileNetV1 {
 public:
  // Errors as BuildArchitecture.
  static absl::StatusOr<std::unique_ptr<MobileNetV1>> Create(const MobileNetConfig& config);

  const Architecture& architecture() const { return arch_; }
  const ParameterLayout& parameter_layout() const { return params_; }
  const ParameterLayout& state_layout() const { return state_; }

  // images [batch, R, R, Cin] NHWC; labels [batch] in [0, num_classes).
  // Forward in training mode (batch statistics), loss, backward. `gradients`
  // (parameter_layout().total_size() floats) is overwritten with d loss / d params.
  // `batch_stats` (state_layout().total_size(), may be null) receives each batch norm's
  // batch mean and biased variance. batch >= 1.
  TrainStepResult TrainStep(const float* params, const float* images, const int* labels,
                            int batch, float label_smoothing, float* gradients,
                            float* batch_stats);

  // Inference mode with moving statistics from `state`. logits [batch, num_classes].
  void Infer(const float* params, const float* state, const float* images, int batch,
             float* logits);

  // The logits of the last TrainStep, [batch, num_classes]; valid until the next TrainStep
  // or Infer.
  absl::Span<const float> last_logits() const;

  // Bytes of activation workspace currently held (grows to the largest batch seen).
  size_t workspace_bytes() const;

 private:
  // Offsets into the parameter and state buffers of one convolution's tensors.
  struct ConvOffsets {
    int64_t weights, gamma, beta;  // in parameter_layout()
    int64_t mean, variance;        // in state_layout()
  };

  explicit MobileNetV1(Architecture arch);
  // Grows (never shrinks) the buffers TrainStep needs to hold `batch` images.
  void EnsureTrainingWorkspace(int batch);
  // Grows the ping-pong and head buffers shared by TrainStep and Infer.
  void EnsureScratch(int batch);
  void ConvForward(int layer, int batch, const float* params, const float* input,
                   float* output) const;
  // d_filter accumulated; d_input overwritten unless null.
  void ConvBackward(int layer, int batch, const float* params, const float* input,
                    const float* d_output, float* d_input, float* gradients) const;

  Architecture arch_;
  ParameterLayout params_;
  ParameterLayout state_;
  std::vector<ConvOffsets> offsets_;
  int64_t classifier_weights_ = 0, classifier_bias_ = 0;
  int64_t max_activation_per_image_ = 0;  // floats of the largest conv output

  // TrainStep keeps, per conv layer, the pre-batch-norm output z and the post-ReLU6
  // activation a (the next layer's input), sized for training_batch_ images.
  int training_batch_ = 0;
  std::vector<std::vector<float>> z_, a_;
  std::vector<float> batch_stats_;  // state_layout() sized: this step's mean and variance
  // Two buffers of the largest activation, sized for scratch_batch_: the gradient
  // ping-pong in TrainStep, the activation ping-pong in Infer. Plus the head buffers.
  int scratch_batch_ = 0;
  std::vector<float> ping_, pong_, pooled_, d_pooled_, logits_, d_logits_;
  int last_batch_ = 0;
};

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_MOBILENET_V1_H_
