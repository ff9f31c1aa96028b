#include "model/layers/softmax_cross_entropy.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace mobilenet {

float SoftmaxCrossEntropy(int n, int k, const float* logits, const int* labels,
                          float label_smoothing, float* d_logits, int* correct) {
  // With target t = (1 - s) * one_hot + s / K (sums to 1), the loss of one row is
  // -sum_j t_j * log softmax_j = logsumexp(logits) - sum_j t_j * logits_j.
  const double off_target = static_cast<double>(label_smoothing) / k;
  const double on_target = 1.0 - label_smoothing + off_target;
  double total_loss = 0;
  int num_correct = 0;
  for (int i = 0; i < n; ++i) {
    const float* row = logits + int64_t{i} * k;
    const int label = labels[i];
    if (label < 0 || label >= k) {  // Programming error: loaders validate labels.
      std::fprintf(stderr, "SoftmaxCrossEntropy: label %d of example %d not in [0, %d)\n",
                   label, i, k);
      std::abort();
    }
    int argmax = 0;
    for (int j = 1; j < k; ++j) {
      if (row[j] > row[argmax]) argmax = j;
    }
    if (argmax == label) ++num_correct;
    const double max_logit = row[argmax];
    double sum_exp = 0;
    double sum_logits = 0;
    for (int j = 0; j < k; ++j) {
      sum_exp += std::exp(row[j] - max_logit);
      sum_logits += row[j];
    }
    const double log_sum_exp = max_logit + std::log(sum_exp);
    total_loss += log_sum_exp - off_target * sum_logits - (on_target - off_target) * row[label];
    if (d_logits != nullptr) {
      float* d_row = d_logits + int64_t{i} * k;
      for (int j = 0; j < k; ++j) {
        const double softmax = std::exp(row[j] - log_sum_exp);
        const double target = j == label ? on_target : off_target;
        d_row[j] = static_cast<float>((softmax - target) / n);
      }
    }
  }
  if (correct != nullptr) *correct = num_correct;
  return static_cast<float>(total_loss / n);
}

}  // namespace mobilenet
