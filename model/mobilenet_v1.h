// The MobileNet-V1 network: forward and backward passes over an Architecture, reading
// weights from one flat buffer (ParameterLayout) and writing gradients into another of the
// same layout. Owns only its activation workspace; weights live with the caller (a
// parameter store). Not thread-safe: one instance per training thread.
#ifndef MOBILENET_MODEL_MOBILENET_V1_H_
#define MOBILENET_MODEL_MOBILENET_V1_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
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

  // Bytes of activation workspace currently held (grows to the largest batch seen).
  size_t workspace_bytes() const;

 private:
  MobileNetV1(Architecture arch);
  void EnsureWorkspace(int batch);

  Architecture arch_;
  ParameterLayout params_;
  ParameterLayout state_;
  // Per conv layer: pre-batch-norm output z and post-ReLU6 activation a; plus scratch
  // buffers for gradients. Sized for workspace_batch_.
  int workspace_batch_ = 0;
  std::vector<std::vector<float>> z_, a_;
  std::vector<float> grad_a_, grad_b_, pooled_, logits_, d_logits_, d_pooled_;
  std::vector<int> param_index_;  // per conv: index of its weights view in params_
};

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_MOBILENET_V1_H_
