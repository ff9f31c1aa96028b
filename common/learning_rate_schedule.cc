#include "common/learning_rate_schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace mobilenet {

absl::StatusOr<LearningRateDecay> ParseLearningRateDecay(absl::string_view name) {
  if (name == "exponential") return LearningRateDecay::kExponential;
  if (name == "cosine") return LearningRateDecay::kCosine;
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown learning rate decay \"%s\" (known: exponential, cosine)", name));
}

absl::StatusOr<LearningRateSchedule> LearningRateSchedule::Create(
    const LearningRateScheduleConfig& config) {
  if (!(config.initial_learning_rate > 0.0f) || !std::isfinite(config.initial_learning_rate)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "initial learning rate must be a finite value > 0, got %g", config.initial_learning_rate));
  }
  if (!(config.decay_factor > 0.0f && config.decay_factor <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "learning rate decay factor must be in (0, 1], got %g", config.decay_factor));
  }
  if (!(config.epochs_per_decay > 0.0f) || !std::isfinite(config.epochs_per_decay)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("epochs per learning rate decay must be a finite value > 0, got %g",
                        config.epochs_per_decay));
  }
  if (config.decay == LearningRateDecay::kCosine &&
      (!(config.cosine_epochs > 0.0f) || !std::isfinite(config.cosine_epochs))) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cosine decay needs its length in epochs, a finite value > 0, got %g",
                        config.cosine_epochs));
  }
  if (!(config.warmup_epochs >= 0.0f) || !std::isfinite(config.warmup_epochs)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "warm-up epochs must be a finite value >= 0, got %g", config.warmup_epochs));
  }
  if (config.examples_per_epoch <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("examples per epoch must be > 0, got %d", config.examples_per_epoch));
  }
  return LearningRateSchedule(config);
}

float LearningRateSchedule::LearningRate(int64_t examples_seen) const {
  if (examples_seen < 0) examples_seen = 0;
  const double epochs =
      static_cast<double>(examples_seen) / static_cast<double>(config_.examples_per_epoch);
  double multiplier;
  if (config_.decay == LearningRateDecay::kCosine) {
    const double progress = std::min(epochs / config_.cosine_epochs, 1.0);
    multiplier = 0.5 * (1.0 + std::cos(M_PI * progress));
  } else {
    const double examples_per_decay =
        static_cast<double>(config_.epochs_per_decay) * config_.examples_per_epoch;
    double exponent = static_cast<double>(examples_seen) / examples_per_decay;
    if (config_.staircase) exponent = std::floor(exponent);
    multiplier = std::pow(static_cast<double>(config_.decay_factor), exponent);
  }
  if (config_.warmup_epochs > 0.0f) {
    const double warmed =
        (epochs + 1.0 / static_cast<double>(config_.examples_per_epoch)) / config_.warmup_epochs;
    multiplier *= std::min(warmed, 1.0);
  }
  return static_cast<float>(config_.initial_learning_rate * multiplier);
}

std::string LearningRateSchedule::Describe() const {
  const LearningRateScheduleConfig& c = config_;
  std::string text =
      c.decay == LearningRateDecay::kCosine
          ? absl::StrFormat("%g, cosine to 0 over %g epochs", c.initial_learning_rate,
                            c.cosine_epochs)
          : absl::StrFormat("%g, x%g every %g epochs%s", c.initial_learning_rate, c.decay_factor,
                            c.epochs_per_decay, c.staircase ? " (staircase)" : "");
  if (c.warmup_epochs > 0) absl::StrAppendFormat(&text, ", warm-up %g epochs", c.warmup_epochs);
  return text;
}

}  // namespace mobilenet
