// A BatchSource of random images of any shape, for benchmarks and tests that need no data
// set (e.g. ImageNet-sized 224x224x3 inputs with 1000 classes).
#ifndef MOBILENET_WORKER_SYNTHETIC_SOURCE_H_
#define MOBILENET_WORKER_SYNTHETIC_SOURCE_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "worker/batch_source.h"
#include "worker/dataset.h"

namespace mobilenet {

struct SyntheticConfig {
  ImageShape shape{224, 224, 3};
  int num_classes = 1000;
  int64_t examples_per_epoch = 10000;
  uint64_t seed = 0;
};

// Example i of every epoch is a fixed function of (seed, i): pixels uniform in [-1, 1),
// label uniform in [0, num_classes). Examples are served in index order, so the first
// epoch's stream equals every other epoch's. Nothing is stored; images are generated on
// demand. Not thread-safe.
class SyntheticBatchSource : public BatchSource {
 public:
  // InvalidArgument if a shape dimension, num_classes or examples_per_epoch is < 1.
  static absl::StatusOr<std::unique_ptr<SyntheticBatchSource>> Create(
      const SyntheticConfig& config);

  absl::Status NextBatch(int batch_size, float* images, int* labels) override;
  ImageShape output_shape() const override { return config_.shape; }
  int num_classes() const override { return config_.num_classes; }
  int64_t examples_per_epoch() const override { return config_.examples_per_epoch; }
  int64_t epoch() const override { return epoch_; }
  int64_t position() const override { return position_; }
  void SkipTo(int64_t examples) override {
    epoch_ = examples / config_.examples_per_epoch;
    position_ = examples % config_.examples_per_epoch;
  }

 private:
  explicit SyntheticBatchSource(const SyntheticConfig& config) : config_(config) {}

  SyntheticConfig config_;
  int64_t epoch_ = 0;
  int64_t position_ = 0;
};

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_SYNTHETIC_SOURCE_H_
