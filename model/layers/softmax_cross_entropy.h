// Softmax cross-entropy loss with optional label smoothing (TensorFlow semantics:
// target = (1 - s) * one_hot + s / K).
#ifndef MOBILENET_MODEL_LAYERS_SOFTMAX_CROSS_ENTROPY_H_
#define MOBILENET_MODEL_LAYERS_SOFTMAX_CROSS_ENTROPY_H_

namespace mobilenet {

// logits [N, K], labels [N] in [0, K). Returns the mean loss over the batch and writes
// d_logits [N, K] = (softmax - target) / N (overwritten; may be null). Numerically stable
// (max subtracted). `correct`, if not null, receives how many argmax(logits) == label.
float SoftmaxCrossEntropy(int n, int k, const float* logits, const int* labels,
                          float label_smoothing, float* d_logits, int* correct);

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_LAYERS_SOFTMAX_CROSS_ENTROPY_H_
