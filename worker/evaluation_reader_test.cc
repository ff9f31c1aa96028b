#include "worker/evaluation_reader.h"

#include <cmath>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

// n 2x2 images; image i has pixels {i, i, i, 0} (so a flip would show) and label i % 3.
std::shared_ptr<const Dataset> NumberedDataset(int n) {
  std::vector<uint8_t> pixels;
  std::vector<int> labels;
  for (int i = 0; i < n; ++i) {
    for (int p = 0; p < 3; ++p) pixels.push_back(static_cast<uint8_t>(i));
    pixels.push_back(0);
    labels.push_back(i % 3);
  }
  absl::StatusOr<Dataset> dataset = Dataset::Create({2, 2, 1}, 3, pixels, labels);
  EXPECT_TRUE(dataset.ok()) << dataset.status();
  return std::make_shared<const Dataset>(*std::move(dataset));
}

PreprocessingConfig AugmentedRawValues() {
  PreprocessingConfig config;
  config.mean = {0.0f};
  config.stddev = {1.0f / 255.0f};
  config.random_flip = true;  // must be ignored
  config.crop_padding = 1;    // must be ignored
  return config;
}

TEST(EvaluationReaderTest, ReadsOnceInOrderWithShortLastBatch) {
  absl::StatusOr<EvaluationReader> reader =
      EvaluationReader::Create(NumberedDataset(10), AugmentedRawValues());
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->size(), 10);
  std::vector<float> images(4 * 4);
  std::vector<int> labels(4);
  std::vector<int> counts;
  int next = 0;
  while (true) {
    absl::StatusOr<int> count = reader->NextBatch(4, images.data(), labels.data());
    ASSERT_TRUE(count.ok());
    if (*count == 0) break;
    counts.push_back(*count);
    for (int b = 0; b < *count; ++b, ++next) {
      EXPECT_EQ(labels[b], next % 3);
      const std::vector<float> image(images.begin() + 4 * b, images.begin() + 4 * b + 4);
      EXPECT_EQ(image, (std::vector<float>{static_cast<float>(next), static_cast<float>(next),
                                           static_cast<float>(next), 0.0f}))
          << "example " << next;
    }
  }
  EXPECT_EQ(counts, (std::vector<int>{4, 4, 2}));
  EXPECT_EQ(reader->remaining(), 0);
  reader->Reset();
  EXPECT_EQ(reader->position(), 0);
  absl::StatusOr<int> count = reader->NextBatch(4, images.data(), labels.data());
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 4);
  EXPECT_EQ(labels[0], 0);
}

TEST(EvaluationReaderTest, LimitsToMaxExamplesAndResizes) {
  PreprocessingConfig config = AugmentedRawValues();
  config.output_height = 4;
  config.output_width = 4;
  absl::StatusOr<EvaluationReader> reader =
      EvaluationReader::Create(NumberedDataset(10), config, 3);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ(reader->size(), 3);
  EXPECT_EQ(reader->output_shape(), (ImageShape{4, 4, 1}));
  std::vector<float> images(8 * 16);
  std::vector<int> labels(8);
  absl::StatusOr<int> count = reader->NextBatch(8, images.data(), labels.data());
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 3);
  EXPECT_NEAR(images[16 * 2], 2.0f, 1e-4);       // corner of image 2
  EXPECT_NEAR(images[16 * 2 + 15], 0.0f, 1e-4);  // opposite corner
}

TEST(EvaluationReaderTest, RejectsBadArguments) {
  EXPECT_FALSE(EvaluationReader::Create(NumberedDataset(3), AugmentedRawValues(), -1).ok());
  EXPECT_FALSE(EvaluationReader::Create(nullptr, AugmentedRawValues()).ok());
  absl::StatusOr<EvaluationReader> reader =
      EvaluationReader::Create(NumberedDataset(3), AugmentedRawValues());
  ASSERT_TRUE(reader.ok());
  std::vector<float> images(4);
  int label;
  EXPECT_THAT(reader->NextBatch(0, images.data(), &label).status().message(),
              HasSubstr("max_batch must be >= 1, got 0"));
  EXPECT_FALSE(reader->NextBatch(1, images.data(), nullptr).ok());
}

}  // namespace
}  // namespace mobilenet
