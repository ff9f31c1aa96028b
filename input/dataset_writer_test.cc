#include "input/dataset_writer.h"

#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "input/cifar_reader.h"
#include "input/image_folder_source.h"
#include "input/image_folder_testing.h"

namespace mobilenet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_image_folder::FreshDir;

// `per_class` images of each of `num_classes` classes, interleaved by class, of varied
// pixel values.
LabeledImages Sample(int num_classes, int per_class, int height, int width, int channels) {
  LabeledImages images;
  images.height = height;
  images.width = width;
  images.channels = channels;
  for (int c = 0; c < num_classes; ++c) images.class_names.push_back("c" + std::to_string(100 + c));
  uint32_t state = 7;
  for (int i = 0; i < num_classes * per_class; ++i) {
    images.labels.push_back(i % num_classes);
    for (int64_t b = 0; b < images.image_bytes(); ++b) {
      state = state * 1664525u + 1013904223u;
      images.pixels.push_back(static_cast<uint8_t>(state >> 24));
    }
  }
  return images;
}

std::vector<uint8_t> ImageBytes(const LabeledImages& images, int i) {
  return std::vector<uint8_t>(images.image(i), images.image(i) + images.image_bytes());
}

TEST(DatasetWriterTest, FirstPerClassKeepsOrder) {
  const LabeledImages all = Sample(3, 4, 2, 2, 1);
  const LabeledImages some = FirstPerClass(all, 2);
  EXPECT_THAT(some.labels, ElementsAre(0, 1, 2, 0, 1, 2));
  EXPECT_EQ(ImageBytes(some, 4), ImageBytes(all, 4));
  EXPECT_EQ(FirstPerClass(all, 0).size(), 12);
}

TEST(DatasetWriterTest, PngFolderReadsBackExactly) {
  const std::string dir = FreshDir("writer_png");
  for (int channels : {1, 3}) {
    const LabeledImages images = Sample(3, 2, 5, 4, channels);
    ASSERT_TRUE(WriteImageFolder(images, dir, "train", ImageFileFormat::kPng).ok());
    absl::StatusOr<std::unique_ptr<ImageFolderSource>> source =
        ImageFolderSource::Open(dir, "train", channels);
    ASSERT_TRUE(source.ok()) << source.status();
    EXPECT_EQ((*source)->class_names(), images.class_names);
    ASSERT_EQ((*source)->size(), 6);
    // The folder is numbered by class: images 0, 3 (class 0), 1, 4, 2, 5.
    const int order[] = {0, 3, 1, 4, 2, 5};
    for (int i = 0; i < 6; ++i) {
      EXPECT_EQ((*source)->label(i), images.labels[order[i]]);
      EXPECT_EQ((*source)->Load(i)->pixels, ImageBytes(images, order[i])) << i;
    }
  }
}

TEST(DatasetWriterTest, JpegFolderReadsBackApproximately) {
  const std::string dir = FreshDir("writer_jpeg");
  LabeledImages images = Sample(2, 1, 8, 8, 3);
  for (size_t b = 0; b < images.pixels.size(); ++b) images.pixels[b] = 60 + (b % 24);  // smooth
  ASSERT_TRUE(WriteImageFolder(images, dir, "test", ImageFileFormat::kJpeg, 95).ok());
  ASSERT_TRUE(WriteImageFolder(images, dir, "train", ImageFileFormat::kJpeg, 95).ok());
  const auto source = *ImageFolderSource::Open(dir, "test", 3);
  EXPECT_EQ(source->path(1), dir + "/test/c101/000001.jpg");
  const std::vector<uint8_t> decoded = source->Load(1)->pixels;
  const std::vector<uint8_t> original = ImageBytes(images, 1);
  ASSERT_EQ(decoded.size(), original.size());
  for (size_t b = 0; b < decoded.size(); ++b) EXPECT_NEAR(decoded[b], original[b], 12) << b;
}

TEST(DatasetWriterTest, RefusesClassNamesThatWouldNotReadBack) {
  LabeledImages images = Sample(2, 1, 1, 1, 1);
  images.class_names = {"b", "a"};
  EXPECT_THAT(
      std::string(WriteImageFolder(images, FreshDir("writer_names"), "train", ImageFileFormat::kPng)
                      .message()),
      HasSubstr("strictly ascending byte order"));
  images.class_names = {"T-shirt/top", "b"};
  EXPECT_EQ(
      WriteImageFolder(images, FreshDir("writer_names"), "train", ImageFileFormat::kPng).code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(DatasetWriterTest, CifarPadsGrayAndReadsBack) {
  const std::string dir = FreshDir("writer_cifar");
  const LabeledImages train = Sample(10, 3, 28, 28, 1);
  const LabeledImages test = Sample(10, 1, 28, 28, 1);
  ASSERT_TRUE(WriteCifar(train, dir, "train").ok());
  ASSERT_TRUE(WriteCifar(test, dir, "test").ok());
  absl::StatusOr<LabeledImages> read = ReadCifar(dir, "train");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->labels, train.labels);
  EXPECT_EQ(read->class_names, train.class_names);
  for (int i = 0; i < train.size(); ++i) {
    const uint8_t* image = read->image(i);
    for (int y = 0; y < 32; ++y) {
      for (int x = 0; x < 32; ++x) {
        const bool inside = y >= 2 && y < 30 && x >= 2 && x < 30;
        const int expected = inside ? train.image(i)[(y - 2) * 28 + (x - 2)] : 0;
        for (int c = 0; c < 3; ++c) ASSERT_EQ(image[(y * 32 + x) * 3 + c], expected);
      }
    }
  }
  EXPECT_EQ(ReadCifar(dir, "test")->size(), 10);

  const std::string dir100 = FreshDir("writer_cifar100");
  const LabeledImages rgb = Sample(100, 1, 32, 32, 3);
  ASSERT_TRUE(WriteCifar(rgb, dir100, "train").ok());
  EXPECT_EQ(ReadCifar(dir100, "train")->pixels, rgb.pixels);

  EXPECT_EQ(WriteCifar(Sample(3, 1, 4, 4, 3), dir, "train").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteCifar(Sample(10, 1, 33, 4, 3), dir, "train").code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mobilenet
