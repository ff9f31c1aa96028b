// Decoding of JPEG and PNG files into DecodedImage (HWC uint8) with a requested number of
// channels. The format is told by the first bytes (magic numbers), never by the file name.
//
// Conversions, whatever the file holds:
//   - grayscale -> RGB by replicating the gray value; RGB -> grayscale by the ITU-R BT.601
//     luma weights (0.299 R + 0.587 G + 0.114 B, rounded). A grayscale JPEG requested as
//     RGB, or a color JPEG requested as grayscale, is converted by libjpeg-turbo the same
//     way (its Y channel is the BT.601 luma).
//   - alpha (RGBA and gray+alpha PNGs, and PNG tRNS transparency) is dropped: the color
//     values are kept as they are, not blended over any background.
//   - palette PNGs are expanded to RGB; 1/2/4-bit gray to 8 bits; 16-bit samples are
//     scaled to 8 bits (rounded); interlaced (Adam7) PNGs are supported.
//   - CMYK and YCCK JPEGs are converted to RGB as Adobe (Photoshop) writes them, with
//     inverted ink values: R = C * K / 255 (likewise G from M, B from Y). Their colors are
//     approximate (no color profile is applied).
//   - progressive JPEGs are decoded (progressive ones with at most 500
//     scans: more is refused as a decompression bomb).
// Strictness: a JPEG that libjpeg-turbo decodes only with a warning (e.g. truncated scan
// data, which it would fill with gray) is refused, so a damaged image never reaches
// training. Images wider or taller than kMaxImageSide or with more than kMaxImagePixels
// pixels are refused from their header, before any pixel buffer is allocated.
//
// Errors start with the name the caller passes (the file's path) and say what is wrong:
// InvalidArgument for what is not a JPEG or PNG (empty, unknown magic, GIF/BMP/WebP/TIFF,
// named), too large an image, or a channel count other than 1 or 3; DataLoss for a JPEG or
// PNG that is corrupt or truncated.
//
// Every function is thread-safe (no shared state; libjpeg-turbo and libpng handles are
// per call).
#ifndef MOBILENET_INPUT_IMAGE_DECODER_H_
#define MOBILENET_INPUT_IMAGE_DECODER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "input/image_source.h"

namespace mobilenet {

inline constexpr int kMaxImageSide = 16384;
inline constexpr int64_t kMaxImagePixels = 100'000'000;

enum class ImageFormat { kUnknown, kJpeg, kPng };

// "JPEG", "PNG" or "unknown".
const char* ImageFormatName(ImageFormat format);

// kJpeg for FF D8 FF, kPng for the 8-byte PNG signature, else kUnknown.
ImageFormat DetectImageFormat(absl::string_view bytes);

// What an image file's header says.
struct ImageHeader {
  ImageFormat format = ImageFormat::kUnknown;
  int height = 0;
  int width = 0;
  // The color model stored in the file: "gray", "gray+alpha", "RGB", "RGBA", "palette",
  // "palette+alpha" (PNG) or "gray", "YCbCr", "RGB", "CMYK", "YCCK" (JPEG).
  std::string color;
};

// Reads only the header of an encoded image (no pixel data is decoded, so damage after
// the header goes unnoticed) and checks the size limits. Errors as DecodeImage.
absl::StatusOr<ImageHeader> ReadImageHeader(absl::string_view bytes, absl::string_view name);

// Decodes a whole JPEG or PNG into `channels` (1 or 3) channels. `name` (a path) starts
// every error message.
absl::StatusOr<DecodedImage> DecodeImage(absl::string_view bytes, int channels,
                                         absl::string_view name);

// Reads and decodes the file `path`; errors as DecodeImage plus those of reading the file.
absl::StatusOr<DecodedImage> DecodeImageFile(const std::string& path, int channels);

// Reads the file `path` and its image header; errors as ReadImageHeader plus those of
// reading the file.
absl::StatusOr<ImageHeader> ReadImageFileHeader(const std::string& path);

// `image` (1 or 3 channels) with `channels` (1 or 3) channels, converted as above.
// Checks (aborts) on other channel counts.
DecodedImage ConvertChannels(const DecodedImage& image, int channels);

}  // namespace mobilenet

#endif  // MOBILENET_INPUT_IMAGE_DECODER_H_
