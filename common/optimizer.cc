#include "common/optimizer.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "common/momentum_optimizer.h"
#include "common/rmsprop_optimizer.h"
#include "common/sgd_optimizer.h"
#include "common/status_macros.h"

namespace mobilenet {
namespace {

// InvalidArgument unless 0 <= value < 1.
absl::Status CheckUnitInterval(const char* field, float value) {
  if (!(value >= 0.0f && value < 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("optimizer %s must be in [0, 1), got %g", field, value));
  }
  return absl::OkStatus();
}

}  // namespace

const char* OptimizerKindName(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kSgd:
      return "sgd";
    case OptimizerKind::kMomentum:
      return "momentum";
    case OptimizerKind::kRmsProp:
      return "rmsprop";
  }
  return "unknown";
}

absl::StatusOr<OptimizerKind> ParseOptimizerKind(absl::string_view text) {
  for (OptimizerKind kind :
       {OptimizerKind::kSgd, OptimizerKind::kMomentum, OptimizerKind::kRmsProp}) {
    if (text == OptimizerKindName(kind)) return kind;
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown optimizer \"%s\"; expected one of sgd, momentum, rmsprop", text));
}

absl::StatusOr<std::unique_ptr<Optimizer>> CreateOptimizer(const OptimizerConfig& config,
                                                           int64_t size) {
  if (size < 0) {
    return absl::InvalidArgumentError(absl::StrFormat("optimizer size must be >= 0, got %d", size));
  }
  switch (config.kind) {
    case OptimizerKind::kSgd:
      return std::unique_ptr<Optimizer>(new SgdOptimizer(size));
    case OptimizerKind::kMomentum: {
      RETURN_IF_ERROR(CheckUnitInterval("momentum", config.momentum));
      return std::unique_ptr<Optimizer>(new MomentumOptimizer(size, config.momentum));
    }
    case OptimizerKind::kRmsProp: {
      RETURN_IF_ERROR(CheckUnitInterval("momentum", config.momentum));
      RETURN_IF_ERROR(CheckUnitInterval("rmsprop_decay", config.rmsprop_decay));
      if (!(config.epsilon > 0.0f) || !std::isfinite(config.epsilon)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "optimizer epsilon must be a finite value > 0, got %g", config.epsilon));
      }
      return std::unique_ptr<Optimizer>(
          new RmsPropOptimizer(size, config.rmsprop_decay, config.momentum, config.epsilon));
    }
  }
  return absl::InvalidArgumentError("unknown optimizer kind");
}

}  // namespace mobilenet
