#include "worker/dataset_image_source.h"

#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::shared_ptr<const Dataset> TwoImages() {
  // Two 1x2x3 images labelled 2 and 0 of 3 classes.
  absl::StatusOr<Dataset> d =
      Dataset::Create(ImageShape{1, 2, 3}, 3, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {2, 0});
  EXPECT_TRUE(d.ok()) << d.status();
  return std::make_shared<const Dataset>(*std::move(d));
}

TEST(DatasetImageSourceTest, ServesTheDataSetsImagesAndLabels) {
  absl::StatusOr<std::unique_ptr<DatasetImageSource>> source =
      DatasetImageSource::Create(TwoImages(), "train.idx");
  ASSERT_TRUE(source.ok()) << source.status();
  const ImageSource& s = **source;
  EXPECT_EQ(s.size(), 2);
  EXPECT_EQ(s.num_classes(), 3);
  EXPECT_EQ(s.channels(), 3);
  EXPECT_THAT(s.class_names(), ElementsAre("0", "1", "2"));
  EXPECT_EQ(s.label(0), 2);
  EXPECT_EQ(s.label(1), 0);
  absl::StatusOr<DecodedImage> image = s.Load(1);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->height, 1);
  EXPECT_EQ(image->width, 2);
  EXPECT_EQ(image->channels, 3);
  EXPECT_THAT(image->pixels, ElementsAre(7, 8, 9, 10, 11, 12));
  EXPECT_EQ(s.Describe(1), "train.idx record 1");
}

TEST(DatasetImageSourceTest, RejectsOutOfRangeIndicesAndNoDataSet) {
  absl::StatusOr<std::unique_ptr<DatasetImageSource>> source =
      DatasetImageSource::Create(TwoImages(), "train.idx");
  ASSERT_TRUE(source.ok());
  absl::StatusOr<DecodedImage> image = (*source)->Load(2);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(image.status().message(), HasSubstr("train.idx: image index 2 outside [0, 2)"));
  EXPECT_FALSE((*source)->Load(-1).ok());
  EXPECT_FALSE(DatasetImageSource::Create(nullptr, "x").ok());
}

}  // namespace
}  // namespace mobilenet
