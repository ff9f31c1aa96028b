#include "worker/dataset_image_source.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mobilenet {

absl::StatusOr<std::unique_ptr<DatasetImageSource>> DatasetImageSource::Create(
    std::shared_ptr<const Dataset> dataset, std::string name) {
  if (dataset == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("dataset image source ", name, ": no data set"));
  }
  return std::unique_ptr<DatasetImageSource>(
      new DatasetImageSource(std::move(dataset), std::move(name)));
}

DatasetImageSource::DatasetImageSource(std::shared_ptr<const Dataset> dataset, std::string name)
    : dataset_(std::move(dataset)), name_(std::move(name)) {
  class_names_.reserve(dataset_->num_classes());
  for (int i = 0; i < dataset_->num_classes(); ++i) class_names_.push_back(absl::StrCat(i));
}

absl::StatusOr<DecodedImage> DatasetImageSource::Load(int index) const {
  if (index < 0 || index >= size()) {
    return absl::OutOfRangeError(
        absl::StrCat(name_, ": image index ", index, " outside [0, ", size(), ")"));
  }
  const ImageShape& shape = dataset_->shape();
  const uint8_t* pixels = dataset_->image(index);
  return DecodedImage{shape.height, shape.width, shape.channels,
                      std::vector<uint8_t>(pixels, pixels + shape.elements())};
}

std::string DatasetImageSource::Describe(int index) const {
  return absl::StrCat(name_, " record ", index);
}

}  // namespace mobilenet
