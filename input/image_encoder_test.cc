#include "input/image_encoder.h"

#include <string>

#include "gtest/gtest.h"
#include "input/image_decoder.h"

namespace mobilenet {
namespace {

DecodedImage Noise(int height, int width, int channels) {
  DecodedImage image{height, width, channels, {}};
  uint32_t state = 12345;
  for (int i = 0; i < height * width * channels; ++i) {
    state = state * 1664525u + 1013904223u;
    image.pixels.push_back(static_cast<uint8_t>(state >> 24));
  }
  return image;
}

TEST(ImageEncoderTest, PngRoundTripsExactly) {
  for (int channels : {1, 3}) {
    const DecodedImage image = Noise(7, 5, channels);
    absl::StatusOr<std::string> png = EncodePng(image);
    ASSERT_TRUE(png.ok()) << png.status();
    EXPECT_EQ(DetectImageFormat(*png), ImageFormat::kPng);
    absl::StatusOr<DecodedImage> decoded = DecodeImage(*png, channels, "test.png");
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->height, 7);
    EXPECT_EQ(decoded->width, 5);
    EXPECT_EQ(decoded->pixels, image.pixels);
    EXPECT_EQ(ReadImageHeader(*png, "test.png")->color, channels == 1 ? "gray" : "RGB");
  }
}

TEST(ImageEncoderTest, JpegIsGrayForOneChannel) {
  absl::StatusOr<std::string> jpeg = EncodeJpeg(Noise(8, 8, 1), {90, false});
  ASSERT_TRUE(jpeg.ok()) << jpeg.status();
  EXPECT_EQ(ReadImageHeader(*jpeg, "test.jpg")->color, "gray");
}

TEST(ImageEncoderTest, RefusesBadShapesAndQualities) {
  DecodedImage image = Noise(2, 2, 3);
  EXPECT_EQ(EncodeJpeg(image, {0, false}).status().code(), absl::StatusCode::kInvalidArgument);
  image.pixels.pop_back();
  EXPECT_EQ(EncodePng(image).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodePng(Noise(2, 2, 4)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeJpeg(DecodedImage{}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mobilenet
