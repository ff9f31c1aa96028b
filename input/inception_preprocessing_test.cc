#include "input/inception_preprocessing.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

DecodedImage MakeImage(int height, int width, int channels, uint8_t (*value)(int y, int x, int c)) {
  DecodedImage image{height, width, channels, {}};
  image.pixels.resize(static_cast<size_t>(height) * width * channels);
  size_t i = 0;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < channels; ++c) image.pixels[i++] = value(y, x, c);
    }
  }
  return image;
}

DecodedImage RandomImage(int height, int width, int channels, uint64_t seed) {
  DecodedImage image{height, width, channels, {}};
  image.pixels.resize(static_cast<size_t>(height) * width * channels);
  SplitMix64 rng(seed);
  for (uint8_t& v : image.pixels) v = static_cast<uint8_t>(rng.Uniform(256));
  return image;
}

// Evaluation path, values in [0, 1] (no normalization), one channel.
InceptionPreprocessingConfig PlainEvalConfig(int out_h, int out_w) {
  InceptionPreprocessingConfig config;
  config.output_height = out_h;
  config.output_width = out_w;
  config.channels = 1;
  config.training = false;
  config.mean = {0.0f};
  config.stddev = {1.0f};
  return config;
}

InceptionPreprocessor MustCreate(const InceptionPreprocessingConfig& config) {
  absl::StatusOr<InceptionPreprocessor> p = InceptionPreprocessor::Create(config);
  EXPECT_TRUE(p.ok()) << p.status();
  return *std::move(p);
}

TEST(InceptionPreprocessingTest, CentralCropFollowsTf) {
  const InceptionPreprocessor p = MustCreate(PlainEvalConfig(7, 7));
  // 16 * 0.875 = 14: one pixel off each side.
  CropWindow crop = p.CentralCrop(16, 16);
  EXPECT_EQ(crop.y, 1);
  EXPECT_EQ(crop.x, 1);
  EXPECT_EQ(crop.height, 14);
  EXPECT_EQ(crop.width, 14);
  // 8 * 0.875 = 7: half a pixel each side rounds down to none.
  crop = p.CentralCrop(8, 8);
  EXPECT_EQ(crop.height, 8);
  // 100 x 40: offsets floor(6.25) = 6 and floor(2.5) = 2.
  crop = p.CentralCrop(100, 40);
  EXPECT_EQ(crop.y, 6);
  EXPECT_EQ(crop.height, 88);
  EXPECT_EQ(crop.x, 2);
  EXPECT_EQ(crop.width, 36);
}

// A 16x16 horizontal gradient (column x has value 16x) is cropped to columns 1..14 and
// shrunk 2x to 7 columns. Antialiased, output o is the tent over crop columns 2o-1..2o+2
// with weights 1/8, 3/8, 3/8, 1/8 (renormalized at the edges where column 2o-1 or 2o+2
// is outside the crop); plain bilinear averages columns 2o and 2o+1.
TEST(InceptionPreprocessingTest, EvaluationOfGradientMatchesHandComputedValues) {
  const DecodedImage image =
      MakeImage(16, 16, 1, [](int, int x, int) { return static_cast<uint8_t>(16 * x); });
  const std::vector<double> antialiased = {192.0 / 7, 56, 88, 120, 152, 184, 1488.0 / 7};
  const std::vector<double> bilinear = {24, 56, 88, 120, 152, 184, 216};
  for (bool antialias : {true, false}) {
    InceptionPreprocessingConfig config = PlainEvalConfig(7, 7);
    config.antialias = antialias;
    const InceptionPreprocessor p = MustCreate(config);
    std::vector<float> out(p.output_floats());
    ASSERT_TRUE(p.Preprocess(image, /*seed=*/0, out.data()).ok());
    const std::vector<double>& expected = antialias ? antialiased : bilinear;
    for (int y = 0; y < 7; ++y) {
      for (int x = 0; x < 7; ++x) {
        EXPECT_NEAR(out[y * 7 + x], expected[x] / 255, 1e-5)
            << "antialias " << antialias << " at " << y << "," << x;
      }
    }
  }
}

TEST(InceptionPreprocessingTest, UpscalingIsBilinearWithHalfPixelCenters) {
  // Two pixels 0 and 255 resized to 4: sample points -0.25 (clamped), 0.25, 0.75, 1.25.
  const DecodedImage image{1, 2, 1, {0, 255}};
  InceptionPreprocessingConfig config = PlainEvalConfig(1, 4);
  config.central_fraction = 1.0f;
  const InceptionPreprocessor p = MustCreate(config);
  std::vector<float> out(4);
  ASSERT_TRUE(p.Preprocess(image, 0, out.data()).ok());
  EXPECT_THAT(out, testing::Pointwise(testing::FloatNear(1e-6f),
                                      std::vector<float>{0.0f, 0.25f, 0.75f, 1.0f}));
}

TEST(InceptionPreprocessingTest, NormalizesEachChannelWithItsMeanAndStddev) {
  InceptionPreprocessingConfig config;
  config.output_height = 3;
  config.output_width = 5;
  config.training = false;
  const InceptionPreprocessor p = MustCreate(config);
  const DecodedImage image = MakeImage(6, 10, 3, [](int, int, int c) {
    return static_cast<uint8_t>(c == 0 ? 51 : c == 1 ? 102 : 255);
  });
  std::vector<float> out(p.output_floats());
  ASSERT_TRUE(p.Preprocess(image, 0, out.data()).ok());
  const float raw[3] = {0.2f, 0.4f, 1.0f};
  for (int i = 0; i < 15; ++i) {
    for (int c = 0; c < 3; ++c) {
      EXPECT_NEAR(out[i * 3 + c], (raw[c] - ImageNetMean()[c]) / ImageNetStddev()[c], 1e-5);
    }
  }
}

TEST(InceptionPreprocessingTest, RandomCropStaysInsideAndWithinTheRanges) {
  InceptionPreprocessingConfig config;
  const InceptionPreprocessor p = MustCreate(config);
  const int sizes[][2] = {{500, 375}, {375, 500}, {224, 224}, {37, 91}, {8, 8}, {1, 1}};
  SplitMix64 rng(42);
  for (const auto& size : sizes) {
    const int h = size[0], w = size[1];
    int whole = 0;
    for (int draw = 0; draw < 2000; ++draw) {
      const CropWindow c = p.SampleCrop(h, w, &rng);
      ASSERT_GE(c.y, 0);
      ASSERT_GE(c.x, 0);
      ASSERT_GE(c.height, 1);
      ASSERT_GE(c.width, 1);
      ASSERT_LE(c.y + c.height, h);
      ASSERT_LE(c.x + c.width, w);
      if (c.height == h && c.width == w) {
        ++whole;  // the fallback (or a full-size candidate)
        continue;
      }
      const double fraction = static_cast<double>(c.height) * c.width / (h * w);
      const double ratio = static_cast<double>(c.width) / c.height;
      EXPECT_GE(fraction, config.min_crop_area);
      EXPECT_LE(fraction, config.max_crop_area);
      EXPECT_GE(ratio, config.min_aspect_ratio);
      EXPECT_LE(ratio, config.max_aspect_ratio);
    }
    if (h >= 224) {
      EXPECT_LT(whole, 100) << h << "x" << w;  // large images rarely fall back
    }
  }
}

TEST(InceptionPreprocessingTest, RandomCropCoversTheAreaRange) {
  const InceptionPreprocessor p = MustCreate(InceptionPreprocessingConfig{});
  SplitMix64 rng(7);
  double smallest = 1, largest = 0;
  for (int draw = 0; draw < 2000; ++draw) {
    const CropWindow c = p.SampleCrop(400, 400, &rng);
    const double fraction = c.height * c.width / 160000.0;
    smallest = std::min(smallest, fraction);
    largest = std::max(largest, fraction);
  }
  EXPECT_LT(smallest, 0.1);
  EXPECT_GT(largest, 0.9);
}

TEST(InceptionPreprocessingTest, FlipMirrorsTheOutput) {
  InceptionPreprocessingConfig config = PlainEvalConfig(5, 6);
  config.channels = 3;
  config.mean = {0.0f};
  const InceptionPreprocessor p = MustCreate(config);
  const DecodedImage image = RandomImage(20, 30, 3, 3);
  InceptionAugmentation a;
  a.crop = CropWindow{2, 3, 15, 21};
  std::vector<float> plain(p.output_floats()), flipped(p.output_floats());
  ASSERT_TRUE(p.Apply(image, a, plain.data()).ok());
  a.flip = true;
  ASSERT_TRUE(p.Apply(image, a, flipped.data()).ok());
  for (int y = 0; y < 5; ++y) {
    for (int x = 0; x < 6; ++x) {
      for (int c = 0; c < 3; ++c) {
        EXPECT_FLOAT_EQ(flipped[(y * 6 + x) * 3 + c], plain[(y * 6 + 5 - x) * 3 + c]);
      }
    }
  }
}

// A one-pixel checkerboard shrunk 7x: the antialiased tent averages ~14 pixels each way and
// gives mid-gray; plain bilinear lands exactly on source pixel centers and keeps 0 or 1.
TEST(InceptionPreprocessingTest, AntialiasedDownscaleOfCheckerboardIsGray) {
  const DecodedImage board = MakeImage(
      63, 63, 1, [](int y, int x, int) { return static_cast<uint8_t>((x + y) % 2 ? 255 : 0); });
  for (bool antialias : {true, false}) {
    InceptionPreprocessingConfig config = PlainEvalConfig(9, 9);
    config.central_fraction = 1.0f;
    config.antialias = antialias;
    const InceptionPreprocessor p = MustCreate(config);
    std::vector<float> out(p.output_floats());
    ASSERT_TRUE(p.Preprocess(board, 0, out.data()).ok());
    for (float v : out) {
      if (antialias) {
        EXPECT_NEAR(v, 0.5f, 0.02f);
      } else {
        EXPECT_TRUE(v == 0.0f || v == 1.0f) << v;
      }
    }
  }
}

TEST(InceptionPreprocessingTest, HueTurnsAndSaturationZeroGivesGray) {
  InceptionPreprocessingConfig config = PlainEvalConfig(1, 1);
  config.channels = 3;
  config.central_fraction = 1.0f;
  const InceptionPreprocessor p = MustCreate(config);
  const DecodedImage red{1, 1, 3, {255, 0, 0}};
  InceptionAugmentation a;
  a.crop = CropWindow{0, 0, 1, 1};
  a.distort_color = true;
  a.color.hue = 1.0f / 3;  // red -> green
  std::vector<float> out(3);
  ASSERT_TRUE(p.Apply(red, a, out.data()).ok());
  EXPECT_THAT(out, testing::Pointwise(testing::FloatNear(1e-5f), std::vector<float>{0, 1, 0}));
  a.color.hue = -1.0f / 6;  // red -> magenta
  ASSERT_TRUE(p.Apply(red, a, out.data()).ok());
  EXPECT_THAT(out, testing::Pointwise(testing::FloatNear(1e-5f), std::vector<float>{1, 0, 1}));
  a.color.hue = 0;
  a.color.saturation = 0;
  const DecodedImage orange{1, 1, 3, {204, 102, 51}};
  ASSERT_TRUE(p.Apply(orange, a, out.data()).ok());
  EXPECT_THAT(out,
              testing::Pointwise(testing::FloatNear(1e-5f), std::vector<float>{0.8f, 0.8f, 0.8f}));
}

// Training to 16x16 without normalization, with these colour strengths.
InceptionPreprocessingConfig UnnormalizedTrainingConfig(float brightness, float saturation,
                                                        float hue, float contrast) {
  InceptionPreprocessingConfig config;
  config.output_height = 16;
  config.output_width = 16;
  config.mean = {0.0f};
  config.stddev = {1.0f};
  config.brightness_delta = brightness;
  config.saturation_range = saturation;
  config.hue_delta = hue;
  config.contrast_range = contrast;
  return config;
}

TEST(InceptionPreprocessingTest, ColorDistortionStaysInRange) {
  const InceptionPreprocessor p = MustCreate(UnnormalizedTrainingConfig(0.5f, 1, 0.5f, 1));
  const DecodedImage image = RandomImage(40, 30, 3, 11);
  std::vector<float> out(p.output_floats());
  for (uint64_t seed = 0; seed < 200; ++seed) {
    ASSERT_TRUE(p.Preprocess(image, seed, out.data()).ok());
    for (float v : out) {
      ASSERT_GE(v, 0.0f);
      ASSERT_LE(v, 1.0f);
    }
  }
}

TEST(InceptionPreprocessingTest, ZeroStrengthColorDistortionIsTheIdentity) {
  InceptionPreprocessingConfig off = UnnormalizedTrainingConfig(0.5f, 0.5f, 0.2f, 0.5f);
  off.color_distortion = false;
  const InceptionPreprocessor with_zero = MustCreate(UnnormalizedTrainingConfig(0, 0, 0, 0));
  const InceptionPreprocessor without = MustCreate(off);
  const DecodedImage image = RandomImage(40, 30, 3, 5);
  std::vector<float> a(with_zero.output_floats()), b(without.output_floats());
  for (uint64_t seed = 0; seed < 20; ++seed) {
    ASSERT_TRUE(with_zero.Preprocess(image, seed, a.data()).ok());
    ASSERT_TRUE(without.Preprocess(image, seed, b.data()).ok());
    ASSERT_EQ(a, b) << "seed " << seed;
  }
}

TEST(InceptionPreprocessingTest, SameSeedSameOutputOtherSeedOtherOutput) {
  const InceptionPreprocessor p = MustCreate(InceptionPreprocessingConfig{});
  const DecodedImage image = RandomImage(300, 250, 3, 9);
  std::vector<float> a(p.output_floats()), b(p.output_floats()), c(p.output_floats());
  ASSERT_TRUE(p.Preprocess(image, 123, a.data()).ok());
  ASSERT_TRUE(p.Preprocess(image, 123, b.data()).ok());
  ASSERT_TRUE(p.Preprocess(image, 124, c.data()).ok());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(InceptionPreprocessingTest, RejectsBadConfigsAndImages) {
  InceptionPreprocessingConfig config;
  config.min_crop_area = 0;
  EXPECT_THAT(InceptionPreprocessor::Create(config).status().message(), HasSubstr("min_crop_area"));
  config = InceptionPreprocessingConfig{};
  config.max_aspect_ratio = 0.5f;
  EXPECT_THAT(InceptionPreprocessor::Create(config).status().message(),
              HasSubstr("max_aspect_ratio"));
  config = InceptionPreprocessingConfig{};
  config.channels = 1;  // ImageNet's three means
  EXPECT_THAT(InceptionPreprocessor::Create(config).status().message(), HasSubstr("mean has 3"));
  config = InceptionPreprocessingConfig{};
  config.stddev = {0.0f};
  EXPECT_THAT(InceptionPreprocessor::Create(config).status().message(), HasSubstr("stddev"));

  const InceptionPreprocessor p = MustCreate(InceptionPreprocessingConfig{});
  std::vector<float> out(p.output_floats());
  EXPECT_THAT(p.Preprocess(RandomImage(10, 10, 1, 0), 0, out.data()).message(),
              HasSubstr("1 channels, expected 3"));
  DecodedImage short_image = RandomImage(10, 10, 3, 0);
  short_image.pixels.pop_back();
  EXPECT_THAT(p.Preprocess(short_image, 0, out.data()).message(), HasSubstr("inconsistent"));
  InceptionAugmentation a;
  a.crop = CropWindow{5, 0, 6, 10};
  EXPECT_THAT(p.Apply(RandomImage(10, 10, 3, 0), a, out.data()).message(), HasSubstr("not inside"));
}

}  // namespace
}  // namespace mobilenet
