#include "worker/dataset.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

TEST(DatasetTest, HoldsImagesAndLabels) {
  // Two 2x1x3 images.
  std::vector<uint8_t> pixels = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  absl::StatusOr<Dataset> dataset = Dataset::Create({2, 1, 3}, 5, pixels, {4, 0});
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->size(), 2);
  EXPECT_EQ(dataset->shape(), (ImageShape{2, 1, 3}));
  EXPECT_EQ(dataset->shape().elements(), 6);
  EXPECT_EQ(dataset->num_classes(), 5);
  EXPECT_EQ(dataset->image(1)[0], 7);
  EXPECT_EQ(dataset->image(1)[5], 12);
  EXPECT_EQ(dataset->label(0), 4);
  EXPECT_EQ(dataset->label(1), 0);
  EXPECT_EQ(dataset->shape().DebugString(), "2x1x3");
}

TEST(DatasetTest, RejectsPixelCountThatDoesNotMatchLabels) {
  absl::StatusOr<Dataset> dataset = Dataset::Create({2, 2, 1}, 3, std::vector<uint8_t>(7), {0, 1});
  ASSERT_FALSE(dataset.ok());
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dataset.status().message(), HasSubstr("need 8 pixel bytes, got 7"));
}

TEST(DatasetTest, RejectsLabelOutOfRange) {
  absl::StatusOr<Dataset> dataset =
      Dataset::Create({1, 1, 1}, 3, std::vector<uint8_t>(3), {0, 3, 1});
  ASSERT_FALSE(dataset.ok());
  EXPECT_THAT(dataset.status().message(), HasSubstr("label 3 at index 1 outside [0, 3)"));
  dataset = Dataset::Create({1, 1, 1}, 3, std::vector<uint8_t>(1), {-1});
  ASSERT_FALSE(dataset.ok());
  EXPECT_THAT(dataset.status().message(), HasSubstr("label -1 at index 0"));
}

TEST(DatasetTest, RejectsBadShapeAndClassCount) {
  EXPECT_FALSE(Dataset::Create({0, 1, 1}, 3, {}, {}).ok());
  EXPECT_FALSE(Dataset::Create({1, 1, -1}, 3, {}, {}).ok());
  absl::StatusOr<Dataset> dataset = Dataset::Create({1, 1, 1}, 0, {}, {});
  ASSERT_FALSE(dataset.ok());
  EXPECT_THAT(dataset.status().message(), HasSubstr("num_classes must be >= 1, got 0"));
}

TEST(DatasetTest, EmptyDataSetIsAllowed) {
  absl::StatusOr<Dataset> dataset = Dataset::Create({28, 28, 1}, 10, {}, {});
  ASSERT_TRUE(dataset.ok());
  EXPECT_EQ(dataset->size(), 0);
}

}  // namespace
}  // namespace mobilenet
