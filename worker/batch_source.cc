#include "worker/batch_source.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/seeded_random.h"

namespace mobilenet {

absl::Status CheckNextBatchArguments(int batch_size, const float* images, const int* labels) {
  if (batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("NextBatch: batch_size must be >= 1, got ", batch_size));
  }
  if (images == nullptr || labels == nullptr) {
    return absl::InvalidArgumentError("NextBatch: images and labels must not be null");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ShardBatchSource>> ShardBatchSource::Create(
    std::shared_ptr<const Dataset> dataset, DataShard shard, const PreprocessingConfig& config) {
  if (dataset == nullptr) return absl::InvalidArgumentError("shard batch source: no data set");
  if (shard.num_examples() != dataset->size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard batch source: shard made for ", shard.num_examples(),
                     " examples, but the data set has ", dataset->size()));
  }
  absl::StatusOr<ImagePreprocessor> preprocessor =
      ImagePreprocessor::Create(dataset->shape(), config);
  if (!preprocessor.ok()) return preprocessor.status();
  return std::unique_ptr<ShardBatchSource>(new ShardBatchSource(
      std::move(dataset), std::move(shard), std::move(preprocessor).value()));
}

ShardBatchSource::ShardBatchSource(std::shared_ptr<const Dataset> dataset, DataShard shard,
                                   ImagePreprocessor preprocessor)
    : dataset_(std::move(dataset)),
      shard_(std::move(shard)),
      preprocessor_(std::move(preprocessor)),
      order_(shard_.EpochOrder(0)) {}

absl::Status ShardBatchSource::NextBatch(int batch_size, float* images, int* labels) {
  absl::Status status = CheckNextBatchArguments(batch_size, images, labels);
  if (!status.ok()) return status;
  const int64_t image_floats = preprocessor_.output_shape().elements();
  for (int b = 0; b < batch_size; ++b) {
    const int index = order_[position_];
    SplitMix64 rng(shard_.AugmentationSeed(epoch_, index));
    preprocessor_.Apply(dataset_->image(index), preprocessor_.Sample(&rng),
                        images + b * image_floats);
    labels[b] = dataset_->label(index);
    if (++position_ == static_cast<int64_t>(order_.size())) {
      ++epoch_;
      position_ = 0;
      order_ = shard_.EpochOrder(epoch_);
    }
  }
  return absl::OkStatus();
}

void ShardBatchSource::SkipTo(int64_t examples) {
  const int64_t per_epoch = static_cast<int64_t>(order_.size());
  epoch_ = examples / per_epoch;
  position_ = examples % per_epoch;
  order_ = shard_.EpochOrder(epoch_);
}

}  // namespace mobilenet
