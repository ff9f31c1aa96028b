#include "input/image_folder_scan.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "input/image_encoder.h"
#include "input/image_folder_testing.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;
using testing_image_folder::FreshDir;
using testing_image_folder::Uniform;
using testing_image_folder::WriteFile;
using testing_image_folder::WritePng;

class ImageFolderScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir("folder_scan");
    WritePng(dir_ + "/train/a/good.png", 3, 4, 1);
    const std::string jpeg = *EncodeJpeg(Uniform(32, 32, 3, 100));
    WriteFile(dir_ + "/train/a/truncated.jpg", jpeg.substr(0, jpeg.size() - 30));
    WriteFile(dir_ + "/train/b/empty.png", "");
    WritePng(dir_ + "/train/b/good.png", 5, 6, 2);
  }
  std::string dir_;
};

TEST_F(ImageFolderScanTest, HeaderCheckFindsUnreadableFilesAndReportsSizes) {
  const auto source = *ImageFolderSource::Open(dir_, "train", 3);
  const ImageFolderScan scan = ScanImageFolder(*source, ImageCheck::kHeader);
  ASSERT_EQ(scan.bad.size(), 1u);
  EXPECT_EQ(scan.bad[0].index, 2);
  EXPECT_EQ(scan.bad[0].path, dir_ + "/train/b/empty.png");
  EXPECT_THAT(std::string(scan.bad[0].status.message()), HasSubstr("empty file"));
  ASSERT_EQ(scan.headers.size(), 4u);
  EXPECT_EQ(scan.headers[0]->width, 4);
  EXPECT_EQ(scan.headers[1]->format, ImageFormat::kJpeg);  // its header is whole
  EXPECT_FALSE(scan.headers[2].has_value());
  EXPECT_EQ(scan.headers[3]->height, 5);
}

TEST_F(ImageFolderScanTest, DecodeCheckAlsoFindsDamagedPixelData) {
  const auto source = *ImageFolderSource::Open(dir_, "train", 3);
  const ImageFolderScan scan = ScanImageFolder(*source, ImageCheck::kDecode);
  ASSERT_EQ(scan.bad.size(), 2u);
  EXPECT_EQ(scan.bad[0].path, dir_ + "/train/a/truncated.jpg");
  EXPECT_EQ(scan.bad[0].status.code(), absl::StatusCode::kDataLoss);
}

TEST_F(ImageFolderScanTest, SkippingLeavesOnlyGoodImagesAndSaysWhich) {
  absl::StatusOr<CheckedImageFolder> checked =
      OpenImageFolderSkippingBadImages(dir_, "train", 3, ImageCheck::kDecode);
  ASSERT_TRUE(checked.ok()) << checked.status();
  ASSERT_EQ(checked->source->size(), 2);
  EXPECT_EQ(checked->source->excluded_images(), 2);
  EXPECT_EQ(checked->source->path(1), dir_ + "/train/b/good.png");
  for (int i = 0; i < checked->source->size(); ++i) EXPECT_TRUE(checked->source->Load(i).ok());
  const std::string text = DescribeSkippedImages(checked->source->split_dir(), checked->skipped, 1);
  EXPECT_THAT(text, HasSubstr("skipped 2 bad images of " + dir_ + "/train:\n  " + dir_ +
                              "/train/a/truncated.jpg: corrupt or truncated JPEG"));
  EXPECT_THAT(text, HasSubstr("\n  ... and 1 more"));
  EXPECT_EQ(DescribeSkippedImages("x", {}), "");
}

TEST_F(ImageFolderScanTest, AllBadIsAnError) {
  const std::string dir = FreshDir("folder_scan_all_bad");
  WriteFile(dir + "/train/a/x.png", "nope");
  const absl::Status status =
      OpenImageFolderSkippingBadImages(dir, "train", 3, ImageCheck::kHeader).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("none of its 1 images is readable"));
}

}  // namespace
}  // namespace mobilenet
