#include "worker/synthetic_source.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/seeded_random.h"

namespace mobilenet {

absl::StatusOr<std::unique_ptr<SyntheticBatchSource>> SyntheticBatchSource::Create(
    const SyntheticConfig& config) {
  const ImageShape& s = config.shape;
  if (s.height < 1 || s.width < 1 || s.channels < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "synthetic source: shape ", s.DebugString(), " must have every dimension >= 1"));
  }
  if (config.num_classes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("synthetic source: num_classes must be >= 1, got ", config.num_classes));
  }
  if (config.examples_per_epoch < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "synthetic source: examples_per_epoch must be >= 1, got ", config.examples_per_epoch));
  }
  return std::unique_ptr<SyntheticBatchSource>(new SyntheticBatchSource(config));
}

absl::Status SyntheticBatchSource::NextBatch(int batch_size, float* images, int* labels) {
  absl::Status checked = CheckNextBatchArguments(batch_size, images, labels);
  if (!checked.ok()) return checked;
  const int64_t image_floats = config_.shape.elements();
  constexpr float kScale = 2.0f / 65536.0f;  // 16 random bits -> [-1, 1)
  for (int b = 0; b < batch_size; ++b) {
    SplitMix64 rng(MixSeed(config_.seed, static_cast<uint64_t>(position_)));
    labels[b] = static_cast<int>(rng.Uniform(config_.num_classes));
    float* out = images + b * image_floats;
    int64_t i = 0;
    for (; i + 4 <= image_floats; i += 4) {
      const uint64_t bits = rng.Next();
      for (int k = 0; k < 4; ++k) {
        out[i + k] = static_cast<float>((bits >> (16 * k)) & 0xffff) * kScale - 1.0f;
      }
    }
    const uint64_t bits = rng.Next();
    for (int k = 0; i < image_floats; ++i, ++k) {
      out[i] = static_cast<float>((bits >> (16 * k)) & 0xffff) * kScale - 1.0f;
    }
    if (++position_ == config_.examples_per_epoch) {
      ++epoch_;
      position_ = 0;
    }
  }
  return absl::OkStatus();
}

}  // namespace mobilenet
