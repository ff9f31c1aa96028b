#include "worker/image_evaluation_reader.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "worker/batch_source.h"

namespace mobilenet {

absl::StatusOr<std::unique_ptr<ImageEvaluationReader>> ImageEvaluationReader::Create(
    std::shared_ptr<const ImageSource> source, ImageShape output_shape,
    PreprocessFunction preprocess, int max_examples) {
  if (source == nullptr) return absl::InvalidArgumentError("image evaluation reader: no source");
  if (output_shape.height < 1 || output_shape.width < 1 || output_shape.channels < 1) {
    return absl::InvalidArgumentError("image evaluation reader: output dimensions must be >= 1");
  }
  if (max_examples < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("image evaluation reader: max_examples must be >= 0, got ", max_examples));
  }
  const int size = max_examples == 0 ? source->size() : std::min(max_examples, source->size());
  return std::unique_ptr<ImageEvaluationReader>(
      new ImageEvaluationReader(std::move(source), output_shape, std::move(preprocess), size));
}

ImageEvaluationReader::ImageEvaluationReader(std::shared_ptr<const ImageSource> source,
                                             ImageShape output_shape, PreprocessFunction preprocess,
                                             int size)
    : source_(std::move(source)),
      output_shape_(output_shape),
      preprocess_(std::move(preprocess)),
      size_(size) {}

absl::StatusOr<int> ImageEvaluationReader::NextBatch(int max_batch, float* images, int* labels) {
  if (absl::Status checked = CheckNextBatchArguments(max_batch, images, labels); !checked.ok()) {
    return checked;
  }
  const int count = std::min(max_batch, size_ - position_);
  const int64_t image_floats = output_shape_.elements();
  for (int b = 0; b < count; ++b) {
    const int index = position_++;
    absl::StatusOr<DecodedImage> image = source_->Load(index);
    absl::Status status = image.status();
    if (status.ok()) status = preprocess_(*image, /*seed=*/0, images + b * image_floats);
    if (!status.ok()) return NameImageInError(*source_, index, std::move(status));
    labels[b] = source_->label(index);
  }
  return count;
}

}  // namespace mobilenet
