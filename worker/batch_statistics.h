// Prepares a training step's batch-norm statistics for a push. MobileNetV1::TrainStep
// reports each batch norm's batch mean and BIASED variance (divided by M, the number of
// values per channel); the moving variance should average the unbiased one, as
// TensorFlow's fused batch norm does, so the worker rescales by M / (M - 1) before pushing.
#ifndef MOBILENET_WORKER_BATCH_STATISTICS_H_
#define MOBILENET_WORKER_BATCH_STATISTICS_H_

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "model/architecture.h"
#include "model/parameter_layout.h"

namespace mobilenet {

// Multiplies every "<conv>/BatchNorm/moving_variance" range of `batch_stats` (a buffer of
// `state_layout`) by M / (M - 1), M = batch * out_h * out_w of that convolution; leaves it
// unchanged when M == 1. Means are untouched. InvalidArgument if batch < 1 or the buffer
// size differs from the layout's; NotFound naming the tensor if a convolution of `arch`
// has no moving variance in the layout.
absl::Status UnbiasBatchVariances(const Architecture& arch, const ParameterLayout& state_layout,
                                  int batch, absl::Span<float> batch_stats);

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_BATCH_STATISTICS_H_
