#include "input/data_inspection.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "input/dataset_writer.h"
#include "input/image_folder_testing.h"

namespace mobilenet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_image_folder::FreshDir;
using testing_image_folder::Uniform;
using testing_image_folder::WriteFile;
using testing_image_folder::WritePng;

TEST(DataInspectionTest, ParsesFormats) {
  EXPECT_EQ(*ParseDataFormat("cifar"), DataFormat::kCifar);
  EXPECT_EQ(*ParseDataFormat("image_folder"), DataFormat::kImageFolder);
  EXPECT_EQ(ParseDataFormat("idx").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DataInspectionTest, CountsSizesEncodingsAndUnreadableFiles) {
  const std::string dir = FreshDir("inspect_folder");
  WritePng(dir + "/train/cat/1.png", 20, 30, 0);
  WritePng(dir + "/train/cat/2.png", 20, 30, 0);
  WriteFile(dir + "/train/cat/3.jpg", *EncodeJpeg(Uniform(300, 100, 1, 7)));
  WriteFile(dir + "/train/dog/broken.png", "\x89PNG\r\n\x1a\n\0\0");
  WriteFile(dir + "/train/dog/Thumbs.db", "");
  WritePng(dir + "/val/cat/1.png", 2000, 1500, 0);

  absl::StatusOr<DataInspection> inspection =
      InspectData(dir, DataFormat::kAuto, ImageCheck::kHeader);
  ASSERT_TRUE(inspection.ok()) << inspection.status();
  EXPECT_EQ(inspection->format, DataFormat::kImageFolder);
  EXPECT_THAT(inspection->class_names, ElementsAre("cat", "dog"));
  ASSERT_EQ(inspection->splits.size(), 2u);
  const SplitInspection& train = inspection->splits[0];
  EXPECT_EQ(train.images, 4);
  EXPECT_THAT(train.class_counts, ElementsAre(3, 1));
  EXPECT_EQ(train.ignored_files, 1);
  EXPECT_THAT(train.shorter_side, ElementsAre(2, 0, 1, 0, 0, 0, 0));
  EXPECT_EQ(train.sizes.at({30, 20}), 2);
  EXPECT_EQ(train.sizes.at({100, 300}), 1);
  EXPECT_EQ(train.encodings.at("PNG RGB"), 2);
  EXPECT_EQ(train.encodings.at("JPEG gray"), 1);
  ASSERT_EQ(train.unreadable.size(), 1u);
  EXPECT_EQ(train.unreadable[0].path, dir + "/train/dog/broken.png");
  const SplitInspection& test = inspection->splits[1];
  EXPECT_EQ(test.location, dir + "/val");
  EXPECT_THAT(test.class_counts, ElementsAre(1, 0));
  EXPECT_THAT(test.shorter_side, ElementsAre(0, 0, 0, 0, 0, 0, 1));

  const std::string text = FormatInspectionText(*inspection);
  EXPECT_THAT(text, HasSubstr("train (" + dir + "/train): 4 images, 1 unreadable, 1 other"));
  EXPECT_THAT(text, HasSubstr("most common sizes (width x height): 30x20: 2, 100x300: 1\n"));
  EXPECT_THAT(text, HasSubstr("    " + dir + "/train/dog/broken.png: corrupt or truncated PNG"));
  EXPECT_THAT(text, HasSubstr("  dog           0  (none)\n"));
  const std::string json = FormatInspectionJson(*inspection);
  EXPECT_THAT(json, HasSubstr("\"classes\": [\"cat\", \"dog\"]"));
  EXPECT_THAT(json, HasSubstr("\"class_counts\": [3, 1]"));
  EXPECT_THAT(json, HasSubstr("{\"width\": 30, \"height\": 20, \"count\": 2}"));
  EXPECT_THAT(json, HasSubstr("\"path\": \"" + dir + "/train/dog/broken.png\""));
}

TEST(DataInspectionTest, MissingTestSplitIsReportedAndMissingTrainIsAnError) {
  const std::string dir = FreshDir("inspect_no_test");
  EXPECT_EQ(InspectData(dir, DataFormat::kImageFolder, ImageCheck::kHeader).status().code(),
            absl::StatusCode::kNotFound);
  WritePng(dir + "/train/a/1.png", 1, 1, 0);
  absl::StatusOr<DataInspection> inspection =
      InspectData(dir, DataFormat::kImageFolder, ImageCheck::kHeader);
  ASSERT_TRUE(inspection.ok()) << inspection.status();
  ASSERT_EQ(inspection->splits.size(), 2u);
  EXPECT_EQ(inspection->splits[1].status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(FormatInspectionText(*inspection), HasSubstr("\ntest: not readable: neither"));
  EXPECT_THAT(FormatInspectionJson(*inspection), HasSubstr("{\"split\": \"test\", \"error\": "));
}

TEST(DataInspectionTest, InspectsCifar) {
  const std::string dir = FreshDir("inspect_cifar");
  LabeledImages images;
  images.height = images.width = 32;
  images.channels = 3;
  for (int c = 0; c < 10; ++c) images.class_names.push_back("class" + std::to_string(c));
  images.labels = {4, 4, 9};
  images.pixels.assign(3 * 32 * 32 * 3, 1);
  ASSERT_TRUE(WriteCifar(images, dir, "train").ok());
  ASSERT_TRUE(WriteCifar(images, dir, "test").ok());
  absl::StatusOr<DataInspection> inspection =
      InspectData(dir, DataFormat::kAuto, ImageCheck::kHeader);
  ASSERT_TRUE(inspection.ok()) << inspection.status();
  EXPECT_EQ(inspection->format, DataFormat::kCifar);
  EXPECT_EQ(inspection->class_names[9], "class9");
  EXPECT_THAT(inspection->splits[0].class_counts, ElementsAre(0, 0, 0, 0, 2, 0, 0, 0, 0, 1));
  EXPECT_EQ(inspection->splits[0].sizes.at({32, 32}), 3);
  EXPECT_THAT(inspection->splits[1].shorter_side, ElementsAre(0, 3, 0, 0, 0, 0, 0));
}

}  // namespace
}  // namespace mobilenet
