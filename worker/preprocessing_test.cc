#include "worker/preprocessing.h"

#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

// Mean 0, stddev 1/255: the output is the raw pixel value.
PreprocessingConfig RawValues() {
  PreprocessingConfig config;
  config.mean = {0.0f};
  config.stddev = {1.0f / 255.0f};
  return config;
}

std::vector<float> Preprocess(const ImageShape& shape, const PreprocessingConfig& config,
                       const std::vector<uint8_t>& image, const Augmentation& augmentation = {}) {
  absl::StatusOr<ImagePreprocessor> preprocessor = ImagePreprocessor::Create(shape, config);
  EXPECT_TRUE(preprocessor.ok()) << preprocessor.status();
  if (!preprocessor.ok()) return {};
  std::vector<float> out(preprocessor->output_shape().elements(), -999.0f);
  preprocessor->Apply(image.data(), augmentation, out.data());
  return out;
}

void ExpectNear(const std::vector<float>& actual, const std::vector<float>& expected,
                float tolerance = 1e-3f) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], tolerance) << "element " << i;
  }
}

TEST(PreprocessingTest, IdentityKeepsPixels) {
  ExpectNear(Preprocess({2, 3, 1}, RawValues(), {1, 2, 3, 4, 5, 6}), {1, 2, 3, 4, 5, 6});
}

TEST(PreprocessingTest, FlipMirrorsColumns) {
  // 2x3 image, 2 channels: pixel (y, x) = (10y + x, 100 + 10y + x).
  std::vector<uint8_t> image;
  for (int y = 0; y < 2; ++y) {
    for (int x = 0; x < 3; ++x) {
      image.push_back(10 * y + x);
      image.push_back(100 + 10 * y + x);
    }
  }
  Augmentation flip;
  flip.flip = true;
  ExpectNear(Preprocess({2, 3, 2}, RawValues(), image, flip),
             {2, 102, 1, 101, 0, 100, 12, 112, 11, 111, 10, 110});
}

TEST(PreprocessingTest, ShiftMovesTheCropWindowAndFillsWithZeros) {
  const std::vector<uint8_t> image = {1, 2, 3, 4, 5, 6, 7, 8, 9};  // 3x3
  PreprocessingConfig config = RawValues();
  config.crop_padding = 1;
  // Crop corner at (0, 0) of the padded image: content moves down and right.
  Augmentation up_left;
  up_left.shift_y = -1;
  up_left.shift_x = -1;
  ExpectNear(Preprocess({3, 3, 1}, config, image, up_left), {0, 0, 0, 0, 1, 2, 0, 4, 5});
  // Corner at (2, 1): output(y, x) = input(y + 1, x).
  Augmentation down;
  down.shift_y = 1;
  ExpectNear(Preprocess({3, 3, 1}, config, image, down), {4, 5, 6, 7, 8, 9, 0, 0, 0});
  // Shifted past the image: all padding.
  Augmentation far;
  far.shift_x = 3;
  ExpectNear(Preprocess({3, 3, 1}, config, image, far), std::vector<float>(9, 0.0f));
}

TEST(PreprocessingTest, FlipHappensBeforeTheCrop) {
  const std::vector<uint8_t> image = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  Augmentation augmentation;
  augmentation.flip = true;
  augmentation.shift_x = 1;  // of the flipped image {3 2 1; 6 5 4; 9 8 7}
  ExpectNear(Preprocess({3, 3, 1}, RawValues(), image, augmentation), {2, 1, 0, 5, 4, 0, 8, 7, 0});
}

TEST(PreprocessingTest, ResizeOfConstantImageStaysConstant) {
  const std::vector<uint8_t> image(28 * 28, 77);
  for (int size : {32, 56, 64, 20, 28}) {
    PreprocessingConfig config = RawValues();
    config.output_height = size;
    config.output_width = size;
    ExpectNear(Preprocess({28, 28, 1}, config, image), std::vector<float>(size * size, 77.0f));
  }
}

TEST(PreprocessingTest, BilinearTwoByTwoToFourByFour) {
  // Reference: torch.nn.functional.interpolate(mode="bilinear", align_corners=False).
  PreprocessingConfig config = RawValues();
  config.output_height = 4;
  config.output_width = 4;
  ExpectNear(Preprocess({2, 2, 1}, config, {0, 10, 20, 30}),
             {0, 2.5, 7.5, 10, 5, 7.5, 12.5, 15, 15, 17.5, 22.5, 25, 20, 22.5, 27.5, 30});
}

TEST(PreprocessingTest, BilinearNonUniformScales) {
  // Reference: torch interpolate of 10 * arange(9).view(3, 3) to 2x5.
  PreprocessingConfig config = RawValues();
  config.output_height = 2;
  config.output_width = 5;
  ExpectNear(Preprocess({3, 3, 1}, config, {0, 10, 20, 30, 40, 50, 60, 70, 80}),
             {7.5, 11.5, 17.5, 23.5, 27.5, 52.5, 56.5, 62.5, 68.5, 72.5});
}

TEST(PreprocessingTest, NormalizesWithFashionMnistDefaults) {
  const std::vector<float> out = Preprocess({1, 3, 1}, PreprocessingConfig(), {0, 255, 51});
  ExpectNear(out, {-0.2860f / 0.3530f, (1 - 0.2860f) / 0.3530f, (0.2f - 0.2860f) / 0.3530f},
             1e-5f);
}

TEST(PreprocessingTest, NormalizesPerChannel) {
  PreprocessingConfig config;
  config.mean = {0.5f, 0.0f};
  config.stddev = {0.5f, 2.0f};
  ExpectNear(Preprocess({1, 1, 2}, config, {255, 255}), {1.0f, 0.5f}, 1e-5f);
}

TEST(PreprocessingTest, ReplicatesOneChannelToThree) {
  PreprocessingConfig config = RawValues();
  config.output_channels = 3;
  config.output_height = 2;
  ExpectNear(Preprocess({1, 2, 1}, config, {10, 20}),
             {10, 10, 10, 20, 20, 20, 10, 10, 10, 20, 20, 20});
}

TEST(PreprocessingTest, SampleDrawsEveryShiftAndBothFlipsDeterministically) {
  PreprocessingConfig config;
  config.random_flip = true;
  config.crop_padding = 2;
  absl::StatusOr<ImagePreprocessor> preprocessor = ImagePreprocessor::Create({8, 8, 1}, config);
  ASSERT_TRUE(preprocessor.ok());
  std::set<int> shifts_y, shifts_x, flips;
  SplitMix64 rng(5), same(5);
  for (int i = 0; i < 500; ++i) {
    const Augmentation a = preprocessor->Sample(&rng);
    const Augmentation b = preprocessor->Sample(&same);
    ASSERT_EQ(a.flip, b.flip);
    ASSERT_EQ(a.shift_y, b.shift_y);
    ASSERT_EQ(a.shift_x, b.shift_x);
    shifts_y.insert(a.shift_y);
    shifts_x.insert(a.shift_x);
    flips.insert(a.flip);
  }
  EXPECT_EQ(shifts_y, (std::set<int>{-2, -1, 0, 1, 2}));
  EXPECT_EQ(shifts_x, (std::set<int>{-2, -1, 0, 1, 2}));
  EXPECT_EQ(flips.size(), 2u);
}

TEST(PreprocessingTest, SampleWithoutAugmentationIsIdentity) {
  absl::StatusOr<ImagePreprocessor> preprocessor =
      ImagePreprocessor::Create({8, 8, 1}, PreprocessingConfig());
  ASSERT_TRUE(preprocessor.ok());
  SplitMix64 rng(1);
  for (int i = 0; i < 20; ++i) {
    const Augmentation a = preprocessor->Sample(&rng);
    EXPECT_FALSE(a.flip);
    EXPECT_EQ(a.shift_y, 0);
    EXPECT_EQ(a.shift_x, 0);
  }
}

TEST(PreprocessingTest, RejectsBadConfigs) {
  PreprocessingConfig config;
  config.output_channels = 2;
  EXPECT_THAT(ImagePreprocessor::Create({4, 4, 3}, config).status().message(),
              HasSubstr("output_channels 2 must equal the 3 input channels"));
  config = PreprocessingConfig();
  config.mean = {0.1f, 0.2f};
  EXPECT_THAT(ImagePreprocessor::Create({4, 4, 3}, config).status().message(),
              HasSubstr("mean has 2 values, expected 1 or 3"));
  config = PreprocessingConfig();
  config.stddev = {0.0f};
  EXPECT_THAT(ImagePreprocessor::Create({4, 4, 1}, config).status().message(),
              HasSubstr("stddev of channel 0 must be > 0"));
  config = PreprocessingConfig();
  config.crop_padding = -1;
  EXPECT_FALSE(ImagePreprocessor::Create({4, 4, 1}, config).ok());
  config = PreprocessingConfig();
  config.output_height = -5;
  EXPECT_FALSE(ImagePreprocessor::Create({4, 4, 1}, config).ok());
  EXPECT_FALSE(ImagePreprocessor::Create({0, 4, 1}, PreprocessingConfig()).ok());
}

}  // namespace
}  // namespace mobilenet
