// A labelled in-memory data set of equally sized images, without the worker's Dataset
// (input/ must not depend on the worker): what the CIFAR reader returns and the data-set
// writer takes. The worker wraps it in a Dataset (Dataset::Create takes the same fields).
#ifndef MOBILENET_INPUT_LABELED_IMAGES_H_
#define MOBILENET_INPUT_LABELED_IMAGES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace mobilenet {

struct LabeledImages {
  int height = 0;
  int width = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;  // [size(), height, width, channels], HWC per image
  std::vector<int> labels;      // [size()], each in [0, class_names.size())
  std::vector<std::string> class_names;

  int size() const { return static_cast<int>(labels.size()); }
  int64_t image_bytes() const { return static_cast<int64_t>(height) * width * channels; }
  const uint8_t* image(int i) const { return pixels.data() + i * image_bytes(); }
};

// A data set's two splits: OK for "train" and "test"; otherwise InvalidArgument naming
// `what` (e.g. "CIFAR split") and the split given.
inline absl::Status CheckSplit(absl::string_view what, absl::string_view split) {
  if (split == "train" || split == "test") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " must be \"train\" or \"test\", got \"", split, "\""));
}

}  // namespace mobilenet

#endif  // MOBILENET_INPUT_LABELED_IMAGES_H_
