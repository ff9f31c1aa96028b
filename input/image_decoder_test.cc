#include "input/image_decoder.h"

#include <turbojpeg.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "common/file_contents.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "input/image_encoder.h"

namespace mobilenet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kName[] = "dir/image.dat";

// ---- PNG files put together chunk by chunk (independent of libpng's writer) ----

void AppendBigEndian32(std::string* out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(value >> shift));
}

std::string Chunk(const std::string& type, const std::string& data) {
  std::string chunk;
  AppendBigEndian32(&chunk, static_cast<uint32_t>(data.size()));
  const std::string body = type + data;
  chunk += body;
  AppendBigEndian32(&chunk, crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size()));
  return chunk;
}

struct PngSpec {
  uint32_t width = 1;
  uint32_t height = 1;
  int bit_depth = 8;
  int color_type = 2;             // 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA
  std::vector<std::string> rows;  // packed samples of each row, without the filter byte
  std::string palette;            // PLTE: RGB triples
  std::string transparency;       // tRNS
};

std::string MakePng(const PngSpec& spec) {
  std::string png("\x89PNG\r\n\x1a\n", 8);
  std::string header;
  AppendBigEndian32(&header, spec.width);
  AppendBigEndian32(&header, spec.height);
  header += {static_cast<char>(spec.bit_depth), static_cast<char>(spec.color_type), 0, 0, 0};
  png += Chunk("IHDR", header);
  if (!spec.palette.empty()) png += Chunk("PLTE", spec.palette);
  if (!spec.transparency.empty()) png += Chunk("tRNS", spec.transparency);
  std::string raw;
  for (const std::string& row : spec.rows) raw += '\0' + row;  // filter type 0 (none)
  uLongf size = compressBound(raw.size());
  std::string compressed(size, '\0');
  compress(reinterpret_cast<Bytef*>(compressed.data()), &size,
           reinterpret_cast<const Bytef*>(raw.data()), raw.size());
  compressed.resize(size);
  png += Chunk("IDAT", compressed);
  png += Chunk("IEND", "");
  return png;
}

std::string Bytes(std::initializer_list<int> values) {
  std::string s;
  for (int v : values) s.push_back(static_cast<char>(v));
  return s;
}

DecodedImage MustDecode(const std::string& bytes, int channels) {
  absl::StatusOr<DecodedImage> image = DecodeImage(bytes, channels, kName);
  EXPECT_TRUE(image.ok()) << image.status();
  return image.ok() ? *image : DecodedImage{};
}

TEST(ImageDecoderTest, OnePixelRgbPng) {
  PngSpec spec;
  spec.rows = {Bytes({10, 200, 30})};
  const DecodedImage rgb = MustDecode(MakePng(spec), 3);
  EXPECT_EQ(rgb.height, 1);
  EXPECT_EQ(rgb.width, 1);
  EXPECT_EQ(rgb.channels, 3);
  EXPECT_THAT(rgb.pixels, ElementsAre(10, 200, 30));
  // BT.601 luma: 0.299 * 10 + 0.587 * 200 + 0.114 * 30 = 123.81
  EXPECT_THAT(MustDecode(MakePng(spec), 1).pixels, ElementsAre(124));
}

TEST(ImageDecoderTest, PalettePngBecomesRgbAndItsTransparencyIsDropped) {
  PngSpec spec;
  spec.width = 3;
  spec.color_type = 3;
  spec.rows = {Bytes({0, 1, 2})};
  spec.palette = Bytes({255, 0, 0, 0, 255, 0, 1, 2, 3});
  EXPECT_THAT(MustDecode(MakePng(spec), 3).pixels, ElementsAre(255, 0, 0, 0, 255, 0, 1, 2, 3));
  spec.transparency = Bytes({0, 128});  // entry 0 transparent, 1 half
  const std::string png = MakePng(spec);
  EXPECT_THAT(MustDecode(png, 3).pixels, ElementsAre(255, 0, 0, 0, 255, 0, 1, 2, 3));
  absl::StatusOr<ImageHeader> header = ReadImageHeader(png, kName);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->color, "palette+alpha");
}

TEST(ImageDecoderTest, TwoBitGrayPngExpandsToEightBitsAndReplicatesToRgb) {
  PngSpec spec;
  spec.width = 4;
  spec.color_type = 0;
  spec.bit_depth = 2;
  spec.rows = {Bytes({0b00011011})};  // 0, 1, 2, 3
  EXPECT_THAT(MustDecode(MakePng(spec), 1).pixels, ElementsAre(0, 85, 170, 255));
  EXPECT_THAT(MustDecode(MakePng(spec), 3).pixels,
              ElementsAre(0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255));
}

TEST(ImageDecoderTest, SixteenBitPngIsScaledToEightBits) {
  PngSpec spec;
  spec.width = 3;
  spec.color_type = 0;
  spec.bit_depth = 16;
  spec.rows = {Bytes({0x00, 0x00, 0x80, 0x80, 0xff, 0xff})};
  EXPECT_THAT(MustDecode(MakePng(spec), 1).pixels, ElementsAre(0, 128, 255));
}

TEST(ImageDecoderTest, AlphaIsDroppedWithoutBlending) {
  PngSpec rgba;
  rgba.color_type = 6;
  rgba.rows = {Bytes({10, 20, 30, 0})};
  EXPECT_THAT(MustDecode(MakePng(rgba), 3).pixels, ElementsAre(10, 20, 30));
  PngSpec gray_alpha;
  gray_alpha.color_type = 4;
  gray_alpha.rows = {Bytes({77, 5})};
  EXPECT_THAT(MustDecode(MakePng(gray_alpha), 1).pixels, ElementsAre(77));
}

TEST(ImageDecoderTest, TruncatedAndCorruptPngsAreDataLossNamingTheFile) {
  PngSpec spec;
  spec.width = 2;
  spec.height = 2;
  spec.rows = {Bytes({1, 2, 3, 4, 5, 6}), Bytes({7, 8, 9, 10, 11, 12})};
  const std::string png = MakePng(spec);
  const absl::Status truncated = DecodeImage(png.substr(0, png.size() - 20), 3, kName).status();
  EXPECT_EQ(truncated.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(truncated.message()),
              StartsWith(std::string(kName) + ": corrupt or truncated PNG"));
  EXPECT_THAT(std::string(truncated.message()), HasSubstr("truncated"));
  std::string corrupt = png;
  corrupt[png.find("IDAT") + 6] ^= 0x55;  // the CRC no longer matches
  EXPECT_EQ(DecodeImage(corrupt, 3, kName).status().code(), absl::StatusCode::kDataLoss);
}

TEST(ImageDecoderTest, PngLargerThanTheLimitIsRefusedFromItsHeader) {
  PngSpec spec;
  spec.width = kMaxImageSide + 1;
  spec.rows = {};  // never read
  const absl::Status status = ReadImageHeader(MakePng(spec), kName).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              StartsWith(std::string(kName) + ": PNG image of 16385x1"));
  spec.width = 12000;
  spec.height = 12000;  // each side allowed, 144 Mpixels not
  EXPECT_EQ(DecodeImage(MakePng(spec), 3, kName).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- JPEG ----

DecodedImage Gradient(int height, int width, int channels) {
  DecodedImage image;
  image.height = height;
  image.width = width;
  image.channels = channels;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < channels; ++c)
        image.pixels.push_back(x * 4 + y * 2 + c * 40);  // < 256 up to 32x32
    }
  }
  return image;
}

int MaxDifference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  EXPECT_EQ(a.size(), b.size());
  int worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

TEST(ImageDecoderTest, BaselineAndProgressiveJpegsDecodeAlike) {
  const DecodedImage original = Gradient(16, 24, 3);
  absl::StatusOr<std::string> baseline = EncodeJpeg(original, {95, false});
  absl::StatusOr<std::string> progressive = EncodeJpeg(original, {95, true});
  ASSERT_TRUE(baseline.ok() && progressive.ok());
  ASSERT_NE(*baseline, *progressive);
  EXPECT_NE(progressive->find("\xff\xc2"), std::string::npos);  // SOF2: progressive
  const DecodedImage a = MustDecode(*baseline, 3);
  const DecodedImage b = MustDecode(*progressive, 3);
  EXPECT_EQ(b.height, 16);
  EXPECT_EQ(b.width, 24);
  EXPECT_LE(MaxDifference(a.pixels, original.pixels), 4);
  EXPECT_LE(MaxDifference(b.pixels, a.pixels), 4);
  absl::StatusOr<ImageHeader> header = ReadImageHeader(*progressive, kName);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->format, ImageFormat::kJpeg);
  EXPECT_EQ(header->color, "YCbCr");
}

TEST(ImageDecoderTest, GrayJpegReplicatesToRgbAndColorJpegBecomesLuma) {
  const DecodedImage gray = Gradient(8, 8, 1);
  const DecodedImage as_rgb = MustDecode(*EncodeJpeg(gray), 3);
  ASSERT_EQ(as_rgb.channels, 3);
  for (size_t i = 0; i < as_rgb.pixels.size(); i += 3) {
    EXPECT_EQ(as_rgb.pixels[i], as_rgb.pixels[i + 1]);
    EXPECT_EQ(as_rgb.pixels[i], as_rgb.pixels[i + 2]);
  }
  const DecodedImage rgb = Gradient(8, 8, 3);
  const std::string jpeg = *EncodeJpeg(rgb);
  EXPECT_LE(
      MaxDifference(MustDecode(jpeg, 1).pixels, ConvertChannels(MustDecode(jpeg, 3), 1).pixels), 2);
}

TEST(ImageDecoderTest, CmykJpegIsConvertedAsAdobeInvertedCmyk) {
  // 8x8 of stored (C, M, Y, K) = (255, 128, 0, 255): no cyan ink, half magenta, full
  // yellow, no black, i.e. RGB (255, 128, 0).
  std::vector<uint8_t> cmyk;
  for (int i = 0; i < 64; ++i) cmyk.insert(cmyk.end(), {255, 128, 0, 255});
  tjhandle tj = tjInitCompress();
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  ASSERT_EQ(tjCompress2(tj, cmyk.data(), 8, 0, 8, TJPF_CMYK, &buffer, &size, TJSAMP_444, 95, 0), 0)
      << tjGetErrorStr2(tj);
  const std::string jpeg(reinterpret_cast<char*>(buffer), size);
  tjFree(buffer);
  tjDestroy(tj);
  EXPECT_EQ(ReadImageHeader(jpeg, kName)->color, "YCCK");
  const DecodedImage rgb = MustDecode(jpeg, 3);
  ASSERT_EQ(rgb.pixels.size(), 64u * 3);
  EXPECT_NEAR(rgb.pixels[0], 255, 3);
  EXPECT_NEAR(rgb.pixels[1], 128, 3);
  EXPECT_NEAR(rgb.pixels[2], 0, 3);
}

TEST(ImageDecoderTest, TruncatedJpegKeepsItsHeaderButDoesNotDecode) {
  const std::string jpeg = *EncodeJpeg(Gradient(32, 32, 3));
  const size_t scan = jpeg.find("\xff\xda");  // SOS: the entropy-coded data follows
  ASSERT_NE(scan, std::string::npos);
  const std::string truncated = jpeg.substr(0, scan + 40);
  EXPECT_TRUE(ReadImageHeader(truncated, kName).ok());
  const absl::Status status = DecodeImage(truncated, 3, kName).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(status.message()),
              StartsWith(std::string(kName) + ": corrupt or truncated JPEG"));
  const absl::Status header_only = DecodeImage(jpeg.substr(0, 40), 3, kName).status();
  EXPECT_EQ(header_only.code(), absl::StatusCode::kDataLoss) << header_only;
}

TEST(ImageDecoderTest, JpegLargerThanTheLimitIsRefusedFromItsHeader) {
  std::string jpeg = *EncodeJpeg(Gradient(8, 8, 3));
  const size_t sof = jpeg.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  jpeg[sof + 7] = static_cast<char>(0x50);  // width 0x5008 = 20488
  const absl::Status status = DecodeImage(jpeg, 3, kName).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              StartsWith(std::string(kName) + ": JPEG image of 20488x8"));
}

// ---- what is not a JPEG or PNG ----

TEST(ImageDecoderTest, EmptyGarbageAndUnsupportedFormatsAreNamed) {
  const absl::Status empty = DecodeImage("", 3, kName).status();
  EXPECT_EQ(empty.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(empty.message(), std::string(kName) + ": empty file, not a JPEG or PNG image");
  const absl::Status garbage = DecodeImage("hello, world", 3, kName).status();
  EXPECT_EQ(garbage.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(garbage.message()), HasSubstr("it starts with 68 65 6c 6c 6f 2c 20 77"));
  EXPECT_THAT(std::string(DecodeImage("GIF89a\x01\x00", 3, kName).status().message()),
              StartsWith(std::string(kName) + ": a GIF image; only JPEG and PNG"));
  EXPECT_THAT(std::string(ReadImageHeader("BM\x3e\x00\x00\x00", kName).status().message()),
              HasSubstr("a BMP"));
  EXPECT_EQ(DetectImageFormat("\x89PNG\r\n\x1a"), ImageFormat::kUnknown);  // 7 of 8 bytes
  EXPECT_EQ(DecodeImage("\xff\xd8\xff\xe0garbage", 3, kName).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(ImageDecoderTest, OnlyOneOrThreeChannels) {
  PngSpec spec;
  spec.rows = {Bytes({1, 2, 3})};
  EXPECT_EQ(DecodeImage(MakePng(spec), 4, kName).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ImageDecoderTest, DecodesFilesByPath) {
  const std::string path = ::testing::TempDir() + "/image_decoder_test_" +
                           std::to_string(getpid()) + ".png";  // the content decides
  PngSpec spec;
  spec.color_type = 0;
  spec.rows = {Bytes({42})};
  ASSERT_TRUE(WriteFileContents(path, MakePng(spec)).ok());
  absl::StatusOr<DecodedImage> image = DecodeImageFile(path, 3);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_THAT(image->pixels, ElementsAre(42, 42, 42));
  EXPECT_EQ(ReadImageFileHeader(path)->color, "gray");
  unlink(path.c_str());
  EXPECT_EQ(DecodeImageFile(path, 3).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace mobilenet
