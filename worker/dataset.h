// An in-memory image classification data set: uint8 pixels in NHWC order and one
// integer label per image.
#ifndef MOBILENET_WORKER_DATASET_H_
#define MOBILENET_WORKER_DATASET_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mobilenet {

struct ImageShape {
  int height = 0;
  int width = 0;
  int channels = 0;

  int64_t elements() const { return static_cast<int64_t>(height) * width * channels; }
  bool operator==(const ImageShape& o) const {
    return height == o.height && width == o.width && channels == o.channels;
  }
  bool operator!=(const ImageShape& o) const { return !(*this == o); }
  std::string DebugString() const;  // "28x28x1"
};

// Immutable once created; safe to share between threads (e.g. as
// std::shared_ptr<const Dataset>) by any number of readers.
class Dataset {
 public:
  // Takes ownership of `pixels` ([n, h, w, c]) and `labels` ([n]). InvalidArgument if a
  // dimension is < 1, num_classes < 1, pixels.size() != labels.size() * h * w * c, or a
  // label is outside [0, num_classes) (the message names the first bad index and value).
  static absl::StatusOr<Dataset> Create(ImageShape shape, int num_classes,
                                        std::vector<uint8_t> pixels,
                                        std::vector<int> labels);

  int size() const { return static_cast<int>(labels_.size()); }
  const ImageShape& shape() const { return shape_; }
  int num_classes() const { return num_classes_; }

  // Image i as shape().elements() bytes, HWC. 0 <= i < size().
  const uint8_t* image(int i) const;
  int label(int i) const;

  const std::vector<uint8_t>& pixels() const { return pixels_; }
  const std::vector<int>& labels() const { return labels_; }

 private:
  Dataset(ImageShape shape, int num_classes, std::vector<uint8_t> pixels,
          std::vector<int> labels);

  ImageShape shape_;
  int num_classes_ = 0;
  std::vector<uint8_t> pixels_;
  std::vector<int> labels_;
};

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_DATASET_H_
