// The learning rate as a function of the number of training examples seen, so the
// schedule does not depend on batch size or on how many workers push. With e = examples /
// examples_per_epoch (epochs, fractional):
//   exponential: lr = initial * factor ^ (e / epochs_per_decay), the exponent floored when
//                staircase (TensorFlow's exponential_decay, as slim trains MobileNet-V1:
//                factor 0.94 every 2 epochs);
//   cosine:      lr = initial * (1 + cos(pi * min(e, cosine_epochs) / cosine_epochs)) / 2,
//                from initial down to 0 at cosine_epochs (the run's length) and 0 after
//                (Loshchilov & Hutter's SGDR without restarts).
// A linear warm-up multiplies either by min(1, (e + 1 / examples_per_epoch) /
// warmup_epochs) when warmup_epochs > 0: the rate of the first example is not 0, and the
// schedule after the warm-up is unchanged (not shifted).
#ifndef MOBILENET_COMMON_LEARNING_RATE_SCHEDULE_H_
#define MOBILENET_COMMON_LEARNING_RATE_SCHEDULE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mobilenet {

enum class LearningRateDecay { kExponential, kCosine };

// "exponential" or "cosine"; InvalidArgument naming the accepted values otherwise.
absl::StatusOr<LearningRateDecay> ParseLearningRateDecay(absl::string_view name);

struct LearningRateScheduleConfig {
  float initial_learning_rate = 0.045f;  // > 0
  LearningRateDecay decay = LearningRateDecay::kExponential;
  float decay_factor = 0.94f;      // exponential: in (0, 1]; 1 means constant
  float epochs_per_decay = 2.0f;   // exponential: > 0
  bool staircase = true;           // exponential
  float cosine_epochs = 0.0f;      // cosine: > 0, the epochs the rate takes to reach 0
  float warmup_epochs = 0.0f;      // >= 0; 0: no warm-up
  int64_t examples_per_epoch = 0;  // > 0; the training set size
};

// Immutable and thread-safe.
class LearningRateSchedule {
 public:
  // InvalidArgument naming the field if a value is out of the range documented above.
  static absl::StatusOr<LearningRateSchedule> Create(const LearningRateScheduleConfig& config);

  // The learning rate after `examples_seen` (>= 0; negative counts as 0) examples.
  float LearningRate(int64_t examples_seen) const;

  const LearningRateScheduleConfig& config() const { return config_; }

  // For logs, e.g. "0.1, cosine to 0 over 13 epochs, warm-up 0.5 epochs" or
  // "0.045, x0.8 every 1 epochs (staircase)".
  std::string Describe() const;

 private:
  explicit LearningRateSchedule(const LearningRateScheduleConfig& config) : config_(config) {}

  LearningRateScheduleConfig config_;
};

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_LEARNING_RATE_SCHEDULE_H_
