#include "worker/evaluator.h"

#include "common/check.h"
#include "common/status_macros.h"
#include "model/layers/softmax_cross_entropy.h"

namespace mobilenet {

Evaluator::Evaluator(MobileNetV1* model, ParameterClient* client, EvaluationSource* test,
                     int batch_size, bool with_average)
    : model_(model),
      client_(client),
      test_(test),
      batch_size_(batch_size),
      with_average_(with_average) {
  MOBILENET_CHECK(model_ != nullptr && client_ != nullptr && test_ != nullptr);
  MOBILENET_CHECK(batch_size_ >= 1);
}

absl::StatusOr<EvaluationResult> Evaluator::Evaluate() {
  params_.resize(model_->parameter_layout().total_size());
  state_.resize(model_->state_layout().total_size());
  ASSIGN_OR_RETURN(const ModelVersion version,
                   client_->Pull(absl::MakeSpan(params_), absl::MakeSpan(state_)));
  ASSIGN_OR_RETURN(const TestScore raw, Score());
  EvaluationResult eval;
  eval.global_step = version.global_step();
  eval.examples = raw.examples;
  eval.correct = raw.correct;
  eval.loss = raw.loss;
  if (with_average_) {
    RETURN_IF_ERROR(client_->Pull(absl::MakeSpan(params_), {}, WeightsKind::kAverage).status());
    ASSIGN_OR_RETURN(eval.average, Score());
  }
  return eval;
}

absl::StatusOr<TestScore> Evaluator::Score() {
  TestScore eval;
  const int classes = model_->architecture().classifier_out;
  images_.resize(static_cast<size_t>(batch_size_) * test_->output_shape().elements());
  labels_.resize(batch_size_);
  logits_.resize(static_cast<size_t>(batch_size_) * classes);
  test_->Reset();
  double loss_sum = 0;
  while (true) {
    ASSIGN_OR_RETURN(const int n, test_->NextBatch(batch_size_, images_.data(), labels_.data()));
    if (n == 0) break;
    model_->Infer(params_.data(), state_.data(), images_.data(), n, logits_.data());
    int correct = 0;
    loss_sum += static_cast<double>(SoftmaxCrossEntropy(n, classes, logits_.data(),
                                                        labels_.data(), 0.0f, nullptr, &correct)) *
                n;
    eval.correct += correct;
    eval.examples += n;
  }
  eval.loss = eval.examples ? loss_sum / eval.examples : 0;
  return eval;
}

}  // namespace mobilenet
