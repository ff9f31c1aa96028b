// Encoding of DecodedImage (1 or 3 channels, 8 bits) as PNG or JPEG: how the data-set
// writer produces image folders from in-memory data sets.
#ifndef MOBILENET_INPUT_IMAGE_ENCODER_H_
#define MOBILENET_INPUT_IMAGE_ENCODER_H_

#include <string>

#include "absl/status/statusor.h"
#include "input/image_source.h"

namespace mobilenet {

struct JpegOptions {
  int quality = 95;  // [1, 100]
  bool progressive = false;
};

// A JPEG file: grayscale for 1 channel, YCbCr without chroma subsampling (4:4:4) for 3.
// InvalidArgument for an empty image, a channel count other than 1 or 3, pixels that do
// not match the shape, a quality outside [1, 100]; Internal if libjpeg-turbo fails.
absl::StatusOr<std::string> EncodeJpeg(const DecodedImage& image, const JpegOptions& options = {});

// A lossless 8-bit gray (1 channel) or RGB (3 channels) PNG file. Errors as EncodeJpeg.
absl::StatusOr<std::string> EncodePng(const DecodedImage& image);

}  // namespace mobilenet

#endif  // MOBILENET_INPUT_IMAGE_ENCODER_H_
