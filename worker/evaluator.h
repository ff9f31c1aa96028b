// The evaluation of the parameter servers' current model on a test set: pull the weights
// and moving statistics, run inference over every test example, count the correct ones
// and average the cross-entropy; optionally the same again with the servers' weight
// average (--weight_ema_decay) in place of the weights. What the chief runs every epoch and on a
// timer; it holds only inference buffers (no gradients), so a second one for the timer costs
// little.
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
  // batch_size >= 1 (checked). `with_average`: also evaluate the servers' weight average
  // (they must keep one).
  Evaluator(MobileNetV1* model, ParameterClient* client, EvaluationSource* test, int batch_size,
            bool with_average = false);

  // Pulls the current weights and evaluates every example of the test set; with_average:
  // then pulls the weight average and evaluates it with the same moving statistics
  // (result.average; pushes landing between the two pulls may make the average a few
  // steps newer than result.global_step). Errors of the client's Pulls and the reader.
  absl::StatusOr<EvaluationResult> Evaluate();

 private:
  // Runs the whole test set through the model with params_ and state_.
  absl::StatusOr<TestScore> Score();

  MobileNetV1* const model_;
  ParameterClient* const client_;
  EvaluationSource* const test_;
  const int batch_size_;
  const bool with_average_;
  std::vector<float> params_, state_, images_, logits_;
  std::vector<int> labels_;
};

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_EVALUATOR_H_
