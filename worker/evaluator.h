// The evaluation of the parameter servers' current model on a test set: pull the weights
// and moving statistics, run inference over every test example, count the correct ones
// and average the cross-entropy. What the chief runs every epoch and on a timer; it holds
// only inference buffers (no gradients), so a second one for the timer costs little.
#ifndef MOBILENET_WORKER_EVALUATOR_H_
#define MOBILENET_WORKER_EVALUATOR_H_

#include <vector>

#include "absl/status/statusor.h"
#include "model/mobilenet_v1.h"
#include "worker/evaluation_reader.h"
#include "worker/parameter_client.h"

namespace mobilenet {

// Not thread-safe: one Evaluator per thread (each with its own model).
class Evaluator {
 public:
  // `model`, `client` and `test` are not owned and must outlive the evaluator;
  // batch_size >= 1 (checked).
  Evaluator(MobileNetV1* model, ParameterClient* client, EvaluationReader* test, int batch_size);

  // Pulls the current weights and evaluates every example of the test set. Errors of the
  // client's Pull and the reader.
  absl::StatusOr<EvaluationResult> Evaluate();

 private:
  MobileNetV1* const model_;
  ParameterClient* const client_;
  EvaluationReader* const test_;
  const int batch_size_;
  std::vector<float> params_, state_, images_, logits_;
  std::vector<int> labels_;
};

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_EVALUATOR_H_
