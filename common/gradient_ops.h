// Operations on a flat gradient buffer before it is pushed: L2 weight decay, clipping by
// global norm, and the check for non-finite values. Plain loops over spans; which ranges
// take weight decay is the caller's decision (see worker/weight_decay.h).
#ifndef MOBILENET_COMMON_GRADIENT_OPS_H_
#define MOBILENET_COMMON_GRADIENT_OPS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace mobilenet {

// A half-open range [begin, end) of indices into a flat buffer.
struct IndexRange {
  int64_t begin = 0;
  int64_t end = 0;
};

// gradients[i] += weight_decay * weights[i] for every i in every range: the gradient of
// the loss term (weight_decay / 2) * ||w||^2 (TensorFlow-slim's l2_regularizer). Ranges
// must lie within both spans, which must be of equal size (checked).
void AddWeightDecay(float weight_decay, absl::Span<const IndexRange> ranges,
                    absl::Span<const float> weights, absl::Span<float> gradients);

// sqrt(sum of squares), accumulated in double. Inf or NaN if any value is.
double GlobalNorm(absl::Span<const float> values);

// TensorFlow's clip_by_global_norm over one flat buffer: when the global norm exceeds
// clip_norm (> 0), scales every value by clip_norm / norm. Returns the norm before
// clipping. Leaves the values unchanged when the norm is not finite (check with
// FindNonFinite) or clip_norm <= 0 (clipping disabled).
double ClipByGlobalNorm(double clip_norm, absl::Span<float> values);

// Index of the first NaN or infinite value, or -1 if all are finite.
int64_t FindNonFinite(absl::Span<const float> values);

// The largest |value| (0 when empty); +inf or NaN when a value is not finite (NaN wins).
// One vectorized pass: the bound update rules reason from (common/optimizer.h).
float MaxAbs(absl::Span<const float> values);

// OK if all values are finite; otherwise InvalidArgument like
// "<what>[12] is nan; expected finite values".
absl::Status CheckAllFinite(absl::Span<const float> values, absl::string_view what);

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_GRADIENT_OPS_H_
