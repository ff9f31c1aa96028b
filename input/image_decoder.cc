#include "input/image_decoder.h"

#include <png.h>
#include <turbojpeg.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/check.h"
#include "common/file_contents.h"
#include "common/status_macros.h"

namespace mobilenet {
namespace {

constexpr unsigned char kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

bool StartsWith(absl::string_view bytes, const char* prefix, size_t length) {
  return bytes.size() >= length && std::memcmp(bytes.data(), prefix, length) == 0;
}

// For messages: the formats people try most often that are not supported.
const char* UnsupportedFormatName(absl::string_view bytes) {
  if (StartsWith(bytes, "GIF87a", 6) || StartsWith(bytes, "GIF89a", 6)) return "GIF";
  if (StartsWith(bytes, "BM", 2)) return "BMP";
  if (StartsWith(bytes, "RIFF", 4) && bytes.size() >= 12 && bytes.substr(8, 4) == "WEBP") {
    return "WebP";
  }
  if (StartsWith(bytes, "II*\0", 4) || StartsWith(bytes, "MM\0*", 4)) return "TIFF";
  return nullptr;
}

absl::Status NotAnImage(absl::string_view bytes, absl::string_view name) {
  if (bytes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": empty file, not a JPEG or PNG image"));
  }
  if (const char* format = UnsupportedFormatName(bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": a ", format, " image; only JPEG and PNG are supported (convert it first)"));
  }
  std::string head;
  for (size_t i = 0; i < bytes.size() && i < 8; ++i) {
    absl::StrAppendFormat(&head, "%s%02x", i ? " " : "", static_cast<uint8_t>(bytes[i]));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      name, ": not a JPEG (ff d8 ff) or PNG (89 50 4e 47 0d 0a 1a 0a) file; it starts with ",
      head));
}

absl::Status CheckSize(absl::string_view name, const char* format, int64_t width, int64_t height) {
  if (width < 1 || height < 1 || width > kMaxImageSide || height > kMaxImageSide ||
      width * height > kMaxImagePixels) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %s image of %dx%d (width x height) refused: each side must be in [1, %d] and "
        "the image at most %d pixels",
        name, format, width, height, kMaxImageSide, kMaxImagePixels));
  }
  return absl::OkStatus();
}

absl::Status CheckChannels(absl::string_view name, int channels) {
  if (channels != 1 && channels != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": 1 or 3 output channels can be decoded, not ", channels));
  }
  return absl::OkStatus();
}

uint8_t Luma(int r, int g, int b) {
  return static_cast<uint8_t>((299 * r + 587 * g + 114 * b + 500) / 1000);
}

// Converts `count` pixels of src_channels (1 gray or 3 RGB) into dst_channels (1 or 3).
void ConvertPixels(const uint8_t* src, int src_channels, int64_t count, uint8_t* dst,
                   int dst_channels) {
  const bool src_color = src_channels == 3;
  for (int64_t i = 0; i < count; ++i, src += src_channels, dst += dst_channels) {
    if (dst_channels == 1) {
      dst[0] = src_color ? Luma(src[0], src[1], src[2]) : src[0];
    } else if (src_color) {
      dst[0] = src[0];
      dst[1] = src[1];
      dst[2] = src[2];
    } else {
      dst[0] = dst[1] = dst[2] = src[0];
    }
  }
}

// ---- JPEG (libjpeg-turbo's TurboJPEG API, 2.1) ----

struct TjDestroyer {
  void operator()(void* handle) const { tjDestroy(handle); }
};
using TjHandle = std::unique_ptr<void, TjDestroyer>;

const char* JpegColorName(int colorspace) {
  switch (colorspace) {
    case TJCS_GRAY:
      return "gray";
    case TJCS_RGB:
      return "RGB";
    case TJCS_CMYK:
      return "CMYK";
    case TJCS_YCCK:
      return "YCCK";
    default:
      return "YCbCr";
  }
}

struct JpegHeader {
  ImageHeader header;
  int colorspace = TJCS_YCbCr;
};

absl::StatusOr<JpegHeader> ReadJpegHeader(tjhandle tj, absl::string_view bytes,
                                          absl::string_view name) {
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  if (tjDecompressHeader3(tj, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                          &width, &height, &subsampling, &colorspace) != 0) {
    return absl::DataLossError(
        absl::StrCat(name, ": corrupt or truncated JPEG header: ", tjGetErrorStr2(tj)));
  }
  if (width == 0 || height == 0) {  // the data ended before the frame header
    return absl::DataLossError(
        absl::StrCat(name, ": truncated JPEG: no frame header (SOF) before the data ends"));
  }
  RETURN_IF_ERROR(CheckSize(name, "JPEG", width, height));
  JpegHeader result;
  result.header.format = ImageFormat::kJpeg;
  result.header.width = width;
  result.header.height = height;
  result.header.color = JpegColorName(colorspace);
  result.colorspace = colorspace;
  return result;
}

absl::StatusOr<DecodedImage> DecodeJpeg(absl::string_view bytes, int channels,
                                        absl::string_view name) {
  TjHandle tj(tjInitDecompress());
  if (tj == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(name, ": cannot create a JPEG decoder"));
  }
  ASSIGN_OR_RETURN(const JpegHeader header, ReadJpegHeader(tj.get(), bytes, name));
  const bool cmyk = header.colorspace == TJCS_CMYK || header.colorspace == TJCS_YCCK;
  const int decoded_channels = cmyk ? 4 : channels;
  const int pixel_format = cmyk ? TJPF_CMYK : channels == 1 ? TJPF_GRAY : TJPF_RGB;
  DecodedImage image;
  image.width = header.header.width;
  image.height = header.header.height;
  image.channels = decoded_channels;
  image.pixels.resize(static_cast<size_t>(image.width) * image.height * decoded_channels);
  // STOPONWARNING: truncated or damaged scan data is an error, not a half-gray image;
  // LIMITSCANS: a progressive JPEG of more than 500 scans is refused.
  if (tjDecompress2(tj.get(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                    image.pixels.data(), image.width, 0, image.height, pixel_format,
                    TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) != 0) {
    return absl::DataLossError(
        absl::StrCat(name, ": corrupt or truncated JPEG data: ", tjGetErrorStr2(tj.get())));
  }
  if (!cmyk) return image;
  // Adobe CMYK is stored inverted (255 = no ink): R = C * K / 255.
  DecodedImage rgb;
  rgb.width = image.width;
  rgb.height = image.height;
  rgb.channels = 3;
  rgb.pixels.resize(static_cast<size_t>(image.width) * image.height * 3);
  const uint8_t* src = image.pixels.data();
  for (size_t i = 0; i < rgb.pixels.size(); i += 3, src += 4) {
    for (int c = 0; c < 3; ++c)
      rgb.pixels[i + c] = static_cast<uint8_t>((src[c] * src[3] + 127) / 255);
  }
  return channels == 3 ? rgb : ConvertChannels(rgb, channels);
}

// ---- PNG (libpng 1.6) ----
//
// libpng reports errors by longjmp. RunPng, the only function that calls setjmp, holds no
// C++ object with a destructor; everything it fills lives in the caller's PngSession, which
// also owns (and after RunPng returns, frees) the libpng structures.

struct PngSession {
  png_structp png = nullptr;
  png_infop info = nullptr;
  const unsigned char* data = nullptr;
  size_t size = 0;
  size_t offset = 0;
  bool header_only = false;
  char error[256] = "";
  bool too_large = false;
  // Results.
  png_uint_32 width = 0;
  png_uint_32 height = 0;
  int color_type = 0;
  int channels = 0;  // after the transformations: 1 or 3
  std::vector<uint8_t>* pixels = nullptr;
  std::vector<png_bytep>* rows = nullptr;

  ~PngSession() {
    if (png != nullptr) png_destroy_read_struct(&png, info != nullptr ? &info : nullptr, nullptr);
  }
};

[[noreturn]] void PngError(png_structp png, png_const_charp message) {
  auto* session = static_cast<PngSession*>(png_get_error_ptr(png));
  std::snprintf(session->error, sizeof(session->error), "%s", message);
  longjmp(png_jmpbuf(png), 1);
}

void PngWarning(png_structp, png_const_charp) {}  // e.g. an incorrect sRGB profile: harmless

void PngRead(png_structp png, png_bytep out, png_size_t length) {
  auto* session = static_cast<PngSession*>(png_get_io_ptr(png));
  if (length > session->size - session->offset) png_error(png, "file ends early (truncated)");
  std::memcpy(out, session->data + session->offset, length);
  session->offset += length;
}

// Reads the header and, unless header_only, the pixels as 8-bit gray or RGB. false on an
// error (session->error says which, or session->too_large).
bool RunPng(PngSession* session) {
  if (setjmp(png_jmpbuf(session->png))) return false;
  png_set_read_fn(session->png, session, PngRead);
  png_read_info(session->png, session->info);
  session->width = png_get_image_width(session->png, session->info);
  session->height = png_get_image_height(session->png, session->info);
  session->color_type = png_get_color_type(session->png, session->info);
  if (session->width > kMaxImageSide || session->height > kMaxImageSide ||
      static_cast<int64_t>(session->width) * session->height > kMaxImagePixels) {
    session->too_large = true;
    return false;
  }
  if (session->header_only) return true;
  png_set_expand(session->png);  // palette -> RGB, gray < 8 bits -> 8 bits, tRNS -> alpha
  png_set_scale_16(session->png);
  png_set_strip_alpha(session->png);
  png_set_interlace_handling(session->png);
  png_read_update_info(session->png, session->info);
  session->channels = png_get_channels(session->png, session->info);
  const size_t row_bytes = png_get_rowbytes(session->png, session->info);
  if (row_bytes != static_cast<size_t>(session->width) * session->channels) {
    png_error(session->png, "unexpected row size after conversion to 8 bits");
  }
  session->pixels->resize(row_bytes * session->height);
  session->rows->resize(session->height);
  for (png_uint_32 y = 0; y < session->height; ++y) {
    (*session->rows)[y] = session->pixels->data() + y * row_bytes;
  }
  png_read_image(session->png, session->rows->data());
  png_read_end(session->png, nullptr);
  return true;
}

const char* PngColorName(int color_type) {
  switch (color_type) {
    case PNG_COLOR_TYPE_GRAY:
      return "gray";
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      return "gray+alpha";
    case PNG_COLOR_TYPE_PALETTE:
      return "palette";
    case PNG_COLOR_TYPE_RGB_ALPHA:
      return "RGBA";
    default:
      return "RGB";
  }
}

// Decodes (or, with image == nullptr, reads the header of) a PNG.
absl::StatusOr<ImageHeader> ReadPng(absl::string_view bytes, absl::string_view name,
                                    DecodedImage* image) {
  std::vector<uint8_t> pixels;
  std::vector<png_bytep> rows;
  PngSession session;
  session.data = reinterpret_cast<const unsigned char*>(bytes.data());
  session.size = bytes.size();
  session.header_only = image == nullptr;
  session.pixels = &pixels;
  session.rows = &rows;
  session.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &session, PngError, PngWarning);
  if (session.png != nullptr) session.info = png_create_info_struct(session.png);
  if (session.info == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(name, ": cannot create a PNG decoder"));
  }
  const bool ok = RunPng(&session);
  if (session.too_large) {
    return CheckSize(name, "PNG", session.width, session.height);
  }
  if (!ok) {
    return absl::DataLossError(absl::StrCat(name, ": corrupt or truncated PNG: ", session.error));
  }
  ImageHeader header;
  header.format = ImageFormat::kPng;
  header.width = static_cast<int>(session.width);
  header.height = static_cast<int>(session.height);
  header.color = PngColorName(session.color_type);
  if (header.color == "palette" && png_get_valid(session.png, session.info, PNG_INFO_tRNS)) {
    header.color = "palette+alpha";
  }
  if (image != nullptr) {
    image->width = header.width;
    image->height = header.height;
    image->channels = session.channels;
    image->pixels = std::move(pixels);
  }
  return header;
}

}  // namespace

const char* ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg:
      return "JPEG";
    case ImageFormat::kPng:
      return "PNG";
    default:
      return "unknown";
  }
}

ImageFormat DetectImageFormat(absl::string_view bytes) {
  if (StartsWith(bytes, "\xff\xd8\xff", 3)) return ImageFormat::kJpeg;
  if (StartsWith(bytes, reinterpret_cast<const char*>(kPngSignature), sizeof(kPngSignature))) {
    return ImageFormat::kPng;
  }
  return ImageFormat::kUnknown;
}

absl::StatusOr<ImageHeader> ReadImageHeader(absl::string_view bytes, absl::string_view name) {
  switch (DetectImageFormat(bytes)) {
    case ImageFormat::kJpeg: {
      TjHandle tj(tjInitDecompress());
      if (tj == nullptr) {
        return absl::ResourceExhaustedError(absl::StrCat(name, ": cannot create a JPEG decoder"));
      }
      ASSIGN_OR_RETURN(JpegHeader header, ReadJpegHeader(tj.get(), bytes, name));
      return header.header;
    }
    case ImageFormat::kPng:
      return ReadPng(bytes, name, nullptr);
    default:
      return NotAnImage(bytes, name);
  }
}

absl::StatusOr<DecodedImage> DecodeImage(absl::string_view bytes, int channels,
                                         absl::string_view name) {
  RETURN_IF_ERROR(CheckChannels(name, channels));
  switch (DetectImageFormat(bytes)) {
    case ImageFormat::kJpeg:
      return DecodeJpeg(bytes, channels, name);
    case ImageFormat::kPng: {
      DecodedImage image;
      RETURN_IF_ERROR(ReadPng(bytes, name, &image).status());
      if (image.channels != channels) return ConvertChannels(image, channels);
      return image;
    }
    default:
      return NotAnImage(bytes, name);
  }
}

absl::StatusOr<DecodedImage> DecodeImageFile(const std::string& path, int channels) {
  ASSIGN_OR_RETURN(const std::string bytes, ReadFileContents(path));
  return DecodeImage(bytes, channels, path);
}

absl::StatusOr<ImageHeader> ReadImageFileHeader(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string bytes, ReadFileContents(path));
  return ReadImageHeader(bytes, path);
}

DecodedImage ConvertChannels(const DecodedImage& image, int channels) {
  MOBILENET_CHECK(image.channels == 1 || image.channels == 3);
  MOBILENET_CHECK(channels == 1 || channels == 3);
  if (image.channels == channels) return image;
  DecodedImage out;
  out.height = image.height;
  out.width = image.width;
  out.channels = channels;
  const int64_t count = static_cast<int64_t>(image.height) * image.width;
  out.pixels.resize(count * channels);
  ConvertPixels(image.pixels.data(), image.channels, count, out.pixels.data(), channels);
  return out;
}

}  // namespace mobilenet
