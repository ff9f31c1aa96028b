#include "common/file_contents.h"

#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace mobilenet {
namespace {

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/file_contents_test_" + std::to_string(getpid()) + "_" + name;
}

TEST(FileContentsTest, WritesAndReadsBackBinaryBytes) {
  const std::string path = TempPath("bytes");
  const std::string bytes("a\0b\xff\n", 5);
  ASSERT_TRUE(WriteFileContents(path, bytes).ok());
  absl::StatusOr<std::string> read = ReadFileContents(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, bytes);
  unlink(path.c_str());
}

TEST(FileContentsTest, MissingFileIsNotFoundAndNamed) {
  const std::string path = TempPath("missing");
  absl::StatusOr<std::string> read = ReadFileContents(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(read.status().message().find(path), 0u) << read.status();
}

TEST(FileContentsTest, FolderIsRefused) {
  absl::StatusOr<std::string> read = ReadFileContents(::testing::TempDir());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kFailedPrecondition) << read.status();
}

TEST(FileContentsTest, WriteIntoMissingFolderFails) {
  EXPECT_EQ(WriteFileContents(TempPath("no/such/folder"), "x").code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace mobilenet
