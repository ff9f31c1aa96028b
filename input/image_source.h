// A labelled collection of images that may differ in size, read by index: the input of
// the image pipeline for data sets that do not fit the in-memory Dataset (photographs in
// folders), and an adapter for those that do.
#ifndef MOBILENET_INPUT_IMAGE_SOURCE_H_
#define MOBILENET_INPUT_IMAGE_SOURCE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mobilenet {

// One decoded image: height * width * channels bytes, HWC, row-major.
struct DecodedImage {
  int height = 0;
  int width = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;
};

// Immutable after creation; Load may be called from any number of threads at once.
class ImageSource {
 public:
  virtual ~ImageSource() = default;

  // Number of images; indices are [0, size()), in a fixed order that is the same on every
  // machine and every run for the same files (the order data shards are cut from).
  virtual int size() const = 0;
  virtual int num_classes() const = 0;
  // num_classes() names; label i is named class_names()[i].
  virtual const std::vector<std::string>& class_names() const = 0;
  // The label of image `index`, in [0, num_classes()), known without decoding.
  virtual int label(int index) const = 0;
  // Decodes image `index` into channels() channels. An error names the file (or record)
  // and what is wrong with it.
  virtual absl::StatusOr<DecodedImage> Load(int index) const = 0;
  // The channels every decoded image has.
  virtual int channels() const = 0;
  // Where image `index` comes from, for messages (a path, or "FILE record N").
  virtual std::string Describe(int index) const = 0;
};

}  // namespace mobilenet

#endif  // MOBILENET_INPUT_IMAGE_SOURCE_H_
