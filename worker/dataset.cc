#include "worker/dataset.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace mobilenet {

std::string ImageShape::DebugString() const {
  return absl::StrCat(height, "x", width, "x", channels);
}

absl::StatusOr<Dataset> Dataset::Create(ImageShape shape, int num_classes,
                                        std::vector<uint8_t> pixels,
                                        std::vector<int> labels) {
  if (shape.height < 1 || shape.width < 1 || shape.channels < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data set: image shape ", shape.DebugString(), " must have every dimension >= 1"));
  }
  if (num_classes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("data set: num_classes must be >= 1, got ", num_classes));
  }
  const uint64_t expected = static_cast<uint64_t>(labels.size()) * shape.elements();
  if (pixels.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data set: ", labels.size(), " labels of ", shape.DebugString(),
        " images need ", expected, " pixel bytes, got ", pixels.size()));
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= num_classes) {
      return absl::InvalidArgumentError(absl::StrCat("data set: label ", labels[i],
                                                     " at index ", i, " outside [0, ",
                                                     num_classes, ")"));
    }
  }
  return Dataset(shape, num_classes, std::move(pixels), std::move(labels));
}

Dataset::Dataset(ImageShape shape, int num_classes, std::vector<uint8_t> pixels,
                 std::vector<int> labels)
    : shape_(shape),
      num_classes_(num_classes),
      pixels_(std::move(pixels)),
      labels_(std::move(labels)) {}

const uint8_t* Dataset::image(int i) const {
  MOBILENET_CHECK(i >= 0 && i < size());
  return pixels_.data() + static_cast<size_t>(i) * shape_.elements();
}

int Dataset::label(int i) const {
  MOBILENET_CHECK(i >= 0 && i < size());
  return labels_[i];
}

}  // namespace mobilenet
