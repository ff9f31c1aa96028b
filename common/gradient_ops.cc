#include "common/gradient_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_format.h"
#include "common/check.h"
#include "common/float_bits.h"

namespace mobilenet {
namespace {

// Whether any of values[0, n) is infinite or NaN.
bool AnyNonFinite(const float* values, size_t n) {
  uint32_t non_finite = 0;
  for (size_t i = 0; i < n; ++i) non_finite |= NonFiniteBit(values[i]);
  return non_finite != 0;
}

}  // namespace

void AddWeightDecay(float weight_decay, absl::Span<const IndexRange> ranges,
                    absl::Span<const float> weights, absl::Span<float> gradients) {
  MOBILENET_CHECK(weights.size() == gradients.size());
  for (const IndexRange& range : ranges) {
    MOBILENET_CHECK(0 <= range.begin && range.begin <= range.end &&
                    range.end <= static_cast<int64_t>(gradients.size()));
    for (int64_t i = range.begin; i < range.end; ++i) {
      gradients[i] += weight_decay * weights[i];
    }
  }
}

double GlobalNorm(absl::Span<const float> values) {
  double sum = 0.0;
  for (float v : values) sum += static_cast<double>(v) * v;
  return std::sqrt(sum);
}

double ClipByGlobalNorm(double clip_norm, absl::Span<float> values) {
  const double norm = GlobalNorm(values);
  if (clip_norm > 0.0 && std::isfinite(norm) && norm > clip_norm) {
    const float scale = static_cast<float>(clip_norm / norm);
    for (float& v : values) v *= scale;
  }
  return norm;
}

int64_t FindNonFinite(absl::Span<const float> values) {
  // Branch-free over blocks (so the compiler vectorizes it), then a search in the first
  // flagged block.
  constexpr size_t kBlock = 4096;
  for (size_t start = 0; start < values.size(); start += kBlock) {
    const size_t n = std::min(kBlock, values.size() - start);
    if (!AnyNonFinite(values.data() + start, n)) continue;
    for (size_t i = start; i < start + n; ++i) {
      if (!std::isfinite(values[i])) return static_cast<int64_t>(i);
    }
  }
  return -1;
}

float MaxAbs(absl::Span<const float> values) {
  uint32_t largest = 0;
  for (float value : values) largest = std::max(largest, AbsBits(value));
  return FloatFromBits(largest);
}

absl::Status CheckAllFinite(absl::Span<const float> values, absl::string_view what) {
  const int64_t bad = FindNonFinite(values);
  if (bad < 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrFormat("%s[%d] is %g; expected finite values", what, bad, values[bad]));
}

}  // namespace mobilenet
