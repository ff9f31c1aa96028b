#include "input/image_encoder.h"

#include <png.h>
#include <turbojpeg.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace mobilenet {
namespace {

absl::Status CheckImage(const DecodedImage& image) {
  if (image.width < 1 || image.height < 1 || (image.channels != 1 && image.channels != 3)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot encode an image of ", image.height, "x", image.width, "x", image.channels,
        " (height x width x channels): sides must be >= 1 and channels 1 or 3"));
  }
  const size_t expected = static_cast<size_t>(image.height) * image.width * image.channels;
  if (image.pixels.size() != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot encode a ", image.height, "x", image.width, "x", image.channels,
                     " image from ", image.pixels.size(), " bytes; expected ", expected));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> EncodeJpeg(const DecodedImage& image, const JpegOptions& options) {
  RETURN_IF_ERROR(CheckImage(image));
  if (options.quality < 1 || options.quality > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("JPEG quality must be in [1, 100], got ", options.quality));
  }
  tjhandle tj = tjInitCompress();
  if (tj == nullptr) return absl::InternalError("cannot create a JPEG encoder");
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  const bool gray = image.channels == 1;
  const int rc =
      tjCompress2(tj, image.pixels.data(), image.width, 0, image.height,
                  gray ? TJPF_GRAY : TJPF_RGB, &buffer, &size, gray ? TJSAMP_GRAY : TJSAMP_444,
                  options.quality, options.progressive ? TJFLAG_PROGRESSIVE : 0);
  absl::StatusOr<std::string> result =
      rc == 0 ? absl::StatusOr<std::string>(std::string(reinterpret_cast<char*>(buffer), size))
              : absl::InternalError(absl::StrCat("JPEG encoding failed: ", tjGetErrorStr2(tj)));
  tjFree(buffer);
  tjDestroy(tj);
  return result;
}

absl::StatusOr<std::string> EncodePng(const DecodedImage& image) {
  RETURN_IF_ERROR(CheckImage(image));
  // libpng's simplified API: it catches its own errors, no setjmp here.
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = image.width;
  png.height = image.height;
  png.format = image.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_get_memory_size(png, size, 0, image.pixels.data(), 0, nullptr)) {
    return absl::InternalError(absl::StrCat("PNG encoding failed: ", png.message));
  }
  std::string bytes(size, '\0');
  if (!png_image_write_to_memory(&png, bytes.data(), &size, 0, image.pixels.data(), 0, nullptr)) {
    return absl::InternalError(absl::StrCat("PNG encoding failed: ", png.message));
  }
  bytes.resize(size);
  return bytes;
}

}  // namespace mobilenet
