#include "parameter_server/core/core_state.h"

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "common/gradient_ops.h"

namespace mobilenet {

absl::Status CheckCoreState(const CoreState& state, const ParameterLayout& state_layout) {
  const ShardState& shard = state.shard;
  if (shard.version < 0 || shard.examples_seen < shard.version ||
      shard.examples_seen / kMaxExamplesPerPush > shard.version) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "version %d with %d examples seen; expected 0 <= version <= examples seen <= version * "
        "%d",
        shard.version, shard.examples_seen, kMaxExamplesPerPush));
  }
  for (const ShardTensor& tensor : shard.tensors) {
    const int64_t bad = FindNonFinite(tensor.values);
    if (bad >= 0) {
      return absl::InvalidArgumentError(absl::StrFormat("%s[%d] is %g; expected finite values",
                                                        tensor.name, tensor.begin + bad,
                                                        tensor.values[bad]));
    }
    absl::StatusOr<const TensorView*> view = state_layout.Find(tensor.name);
    const bool non_negative = absl::EndsWith(tensor.name, "/rms") ||
                              (view.ok() && (*view)->role == TensorRole::kMovingVariance);
    if (!non_negative) continue;
    for (size_t i = 0; i < tensor.values.size(); ++i) {
      if (tensor.values[i] < 0.0f) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s[%d] is %g; a mean square or variance is never negative", tensor.name,
            tensor.begin + static_cast<int64_t>(i), tensor.values[i]));
      }
    }
  }
  const LedgerState& ledger = state.ledger;
  absl::Status ledger_ok = CheckLedgerState(ledger, static_cast<int>(ledger.workers.size()));
  if (!ledger_ok.ok()) return ledger_ok;
  int64_t pushes = ledger.unattributed_pushes, examples = ledger.unattributed_examples;
  for (const WorkerProgress& w : ledger.workers) {
    if (__builtin_add_overflow(pushes, w.pushes, &pushes) ||
        __builtin_add_overflow(examples, w.examples, &examples)) {
      return absl::InvalidArgumentError("the ledger's counts overflow");
    }
  }
  if (pushes != shard.version || examples != shard.examples_seen) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the ledger's workers account for %d pushes and %d examples, the shard for %d and %d",
        pushes, examples, shard.version, shard.examples_seen));
  }
  return absl::OkStatus();
}

}  // namespace mobilenet
