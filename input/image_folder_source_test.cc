#include "input/image_folder_source.h"

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "input/image_folder_testing.h"

namespace mobilenet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_image_folder::FreshDir;
using testing_image_folder::WriteFile;
using testing_image_folder::WritePng;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

TEST(ImageFolderSourceTest, HasImageExtensionIgnoresCase) {
  EXPECT_TRUE(HasImageExtension("a.jpg"));
  EXPECT_TRUE(HasImageExtension("a.JPEG"));
  EXPECT_TRUE(HasImageExtension("a.b.Png"));
  EXPECT_FALSE(HasImageExtension("a.gif"));
  EXPECT_FALSE(HasImageExtension("jpg"));
  EXPECT_FALSE(HasImageExtension("a.png.txt"));
}

TEST(ImageFolderSourceTest, ListsClassesAndFilesInByteOrder) {
  const std::string dir = FreshDir("folder_order");
  // Written out of order; "B" sorts before "a" byte-wise.
  WritePng(dir + "/train/cat/b.png", 2, 3, 10);
  WritePng(dir + "/train/cat/B.JPG", 2, 3, 20);  // a PNG named .JPG: the content decides
  WritePng(dir + "/train/cat/a.jpeg", 2, 3, 30);
  WritePng(dir + "/train/Dog/z.png", 4, 5, 40);
  WriteFile(dir + "/train/cat/notes.txt", "not an image");
  WriteFile(dir + "/train/README", "not a class");
  std::filesystem::create_directories(dir + "/train/.cache");
  std::filesystem::create_directories(dir + "/train/cat/nested");

  absl::StatusOr<std::unique_ptr<ImageFolderSource>> source =
      ImageFolderSource::Open(dir, "train", 3);
  ASSERT_TRUE(source.ok()) << source.status();
  const ImageFolderSource& s = **source;
  EXPECT_THAT(s.class_names(), ElementsAre("Dog", "cat"));
  ASSERT_EQ(s.size(), 4);
  EXPECT_EQ(s.Describe(0), dir + "/train/Dog/z.png");
  EXPECT_EQ(s.path(1), dir + "/train/cat/B.JPG");
  EXPECT_EQ(s.path(2), dir + "/train/cat/a.jpeg");
  EXPECT_EQ(s.path(3), dir + "/train/cat/b.png");
  EXPECT_EQ(s.label(0), 0);
  EXPECT_EQ(s.label(3), 1);
  EXPECT_THAT(s.class_counts(), ElementsAre(1, 3));
  EXPECT_EQ(s.ignored_files(), 4);  // notes.txt, README, .cache, nested
  EXPECT_EQ(s.split_dir(), dir + "/train");

  absl::StatusOr<DecodedImage> image = s.Load(1);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->height, 2);
  EXPECT_EQ(image->width, 3);
  EXPECT_EQ(image->channels, 3);
  EXPECT_EQ(image->pixels[0], 20);
  absl::StatusOr<std::unique_ptr<ImageFolderSource>> gray =
      ImageFolderSource::Open(dir, "train", 1);
  ASSERT_TRUE(gray.ok());
  EXPECT_EQ((*gray)->Load(0)->channels, 1);
}

TEST(ImageFolderSourceTest, TestFallsBackToValAndUsesTrainsClasses) {
  const std::string dir = FreshDir("folder_val");
  WritePng(dir + "/train/a/1.png", 1, 1, 0);
  WritePng(dir + "/train/b/1.png", 1, 1, 0);
  WritePng(dir + "/train/c/1.png", 1, 1, 0);
  WritePng(dir + "/val/b/x.png", 1, 1, 0);
  absl::StatusOr<std::unique_ptr<ImageFolderSource>> test = ImageFolderSource::Open(dir, "test", 3);
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ((*test)->split_dir(), dir + "/val");
  EXPECT_EQ((*test)->num_classes(), 3);
  ASSERT_EQ((*test)->size(), 1);
  EXPECT_EQ((*test)->label(0), 1);
  EXPECT_THAT((*test)->class_counts(), ElementsAre(0, 1, 0));

  WritePng(dir + "/test/b/y.png", 1, 1, 0);  // test/ wins over val/
  EXPECT_EQ((*ImageFolderSource::Open(dir, "test", 3))->split_dir(), dir + "/test");
  WritePng(dir + "/test/zebra/y.png", 1, 1, 0);
  const absl::Status unknown = ImageFolderSource::Open(dir, "test", 3).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(unknown), HasSubstr(dir + "/test/zebra: class \"zebra\" is not a folder of"));
  EXPECT_THAT(Message(unknown), HasSubstr("whose classes are a, b, c"));
}

TEST(ImageFolderSourceTest, ErrorsNameWhatIsMissing) {
  const std::string dir = FreshDir("folder_errors");
  absl::Status status = ImageFolderSource::Open(dir, "train", 3).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(status), HasSubstr(dir + "/train: no such folder"));

  std::filesystem::create_directories(dir + "/train");
  WriteFile(dir + "/train/stray.png", "x");
  status = ImageFolderSource::Open(dir, "train", 3).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(status), HasSubstr(dir + "/train: no class folders"));

  WritePng(dir + "/train/full/1.png", 1, 1, 0);
  WriteFile(dir + "/train/empty/readme.txt", "");
  status = ImageFolderSource::Open(dir, "train", 3).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(status), HasSubstr(dir + "/train/empty: class folder without a .jpg"));
  EXPECT_THAT(Message(status), HasSubstr("(1 other entries)"));

  std::filesystem::remove_all(dir + "/train/empty");
  status = ImageFolderSource::Open(dir, "test", 3).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(status), HasSubstr("neither " + dir + "/test nor " + dir + "/val"));

  EXPECT_EQ(ImageFolderSource::Open(dir, "validation", 3).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ImageFolderSource::Open(dir, "train", 2).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ImageFolderSourceTest, WithoutRemovesImagesAndKeepsClasses) {
  const std::string dir = FreshDir("folder_without");
  WritePng(dir + "/train/a/1.png", 1, 1, 0);
  WritePng(dir + "/train/a/2.png", 1, 1, 0);
  WritePng(dir + "/train/b/1.png", 1, 1, 0);
  const std::unique_ptr<ImageFolderSource> all = *ImageFolderSource::Open(dir, "train", 3);
  const std::unique_ptr<ImageFolderSource> some = all->Without({2, 0});
  ASSERT_EQ(some->size(), 1);
  EXPECT_EQ(some->path(0), dir + "/train/a/2.png");
  EXPECT_EQ(some->num_classes(), 2);
  EXPECT_THAT(some->class_counts(), ElementsAre(1, 0));
  EXPECT_EQ(some->excluded_images(), 2);
  EXPECT_EQ(some->Without({0})->excluded_images(), 3);
}

TEST(ImageFolderSourceTest, LoadsFromManyThreadsAtOnce) {
  const std::string dir = FreshDir("folder_threads");
  for (int i = 0; i < 8; ++i) WritePng(dir + "/train/a/" + std::to_string(i) + ".png", 9, 7, i);
  const std::unique_ptr<ImageFolderSource> source = *ImageFolderSource::Open(dir, "train", 3);
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        for (int i = 0; i < source->size(); ++i) {
          absl::StatusOr<DecodedImage> image = source->Load(i);
          if (!image.ok() || image->pixels[0] != i) ++failures[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(failures, ElementsAre(0, 0, 0, 0));
}

TEST(ImageFolderSourceTest, LoadNamesTheBadFile) {
  const std::string dir = FreshDir("folder_bad");
  WriteFile(dir + "/train/a/bad.jpg", "GIF89a....");
  const std::unique_ptr<ImageFolderSource> source = *ImageFolderSource::Open(dir, "train", 3);
  const absl::Status status = source->Load(0).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr(dir + "/train/a/bad.jpg: a GIF image"));
}

}  // namespace
}  // namespace mobilenet
