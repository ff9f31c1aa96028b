// Exponential learning-rate decay driven by the number of training examples seen, so the
// schedule does not depend on batch size or on how many workers push:
//   lr = initial * factor ^ (examples / (epochs_per_decay * examples_per_epoch))
// with the exponent floored when staircase (TensorFlow's exponential_decay, as slim
// trains MobileNet-V1: factor 0.94 every 2 epochs).
#ifndef MOBILENET_COMMON_LEARNING_RATE_SCHEDULE_H_
#define MOBILENET_COMMON_LEARNING_RATE_SCHEDULE_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace mobilenet {

struct LearningRateScheduleConfig {
  float initial_learning_rate = 0.045f;  // > 0
  float decay_factor = 0.94f;            // in (0, 1]; 1 means constant
  float epochs_per_decay = 2.0f;         // > 0
  int64_t examples_per_epoch = 0;        // > 0; the training set size
  bool staircase = true;
};

// Immutable and thread-safe.
class LearningRateSchedule {
 public:
  // InvalidArgument naming the field if a value is out of the range documented above.
  static absl::StatusOr<LearningRateSchedule> Create(const LearningRateScheduleConfig& config);

  // The learning rate after `examples_seen` (>= 0; negative counts as 0) examples.
  float LearningRate(int64_t examples_seen) const;

  const LearningRateScheduleConfig& config() const { return config_; }

 private:
  explicit LearningRateSchedule(const LearningRateScheduleConfig& config) : config_(config) {}

  LearningRateScheduleConfig config_;
};

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_LEARNING_RATE_SCHEDULE_H_
