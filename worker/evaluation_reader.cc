#include "worker/evaluation_reader.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mobilenet {

absl::StatusOr<EvaluationReader> EvaluationReader::Create(std::shared_ptr<const Dataset> dataset,
                                                          const PreprocessingConfig& config,
                                                          int max_examples) {
  if (dataset == nullptr) return absl::InvalidArgumentError("evaluation reader: no data set");
  if (max_examples < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("evaluation reader: max_examples must be >= 0, got ", max_examples));
  }
  PreprocessingConfig plain = config;
  plain.random_flip = false;
  plain.crop_padding = 0;
  absl::StatusOr<ImagePreprocessor> preprocessor =
      ImagePreprocessor::Create(dataset->shape(), plain);
  if (!preprocessor.ok()) return preprocessor.status();
  const int size = max_examples == 0 ? dataset->size() : std::min(max_examples, dataset->size());
  return EvaluationReader(std::move(dataset), std::move(preprocessor).value(), size);
}

EvaluationReader::EvaluationReader(std::shared_ptr<const Dataset> dataset,
                                   ImagePreprocessor preprocessor, int size)
    : dataset_(std::move(dataset)), preprocessor_(std::move(preprocessor)), size_(size) {}

absl::StatusOr<int> EvaluationReader::NextBatch(int max_batch, float* images, int* labels) {
  if (max_batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("evaluation reader: max_batch must be >= 1, got ", max_batch));
  }
  if (images == nullptr || labels == nullptr) {
    return absl::InvalidArgumentError("evaluation reader: images and labels must not be null");
  }
  const int count = std::min(max_batch, remaining());
  const int64_t image_floats = preprocessor_.output_shape().elements();
  const Augmentation identity;
  for (int b = 0; b < count; ++b) {
    const int index = position_ + b;
    preprocessor_.Apply(dataset_->image(index), identity, images + b * image_floats);
    labels[b] = dataset_->label(index);
  }
  position_ += count;
  return count;
}

}  // namespace mobilenet
