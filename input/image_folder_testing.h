// Test helpers (header-only, for *_test.cc of input/): fresh temporary folders and small
// image files written into them.
#ifndef MOBILENET_INPUT_IMAGE_FOLDER_TESTING_H_
#define MOBILENET_INPUT_IMAGE_FOLDER_TESTING_H_

#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/file_contents.h"
#include "gtest/gtest.h"
#include "input/image_encoder.h"

namespace mobilenet {
namespace testing_image_folder {

// An empty folder below the test's temporary folder, unique to this process and `name`.
inline std::string FreshDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/" + name + "_" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A height x width image of `channels` channels whose every byte is `value`.
inline DecodedImage Uniform(int height, int width, int channels, uint8_t value) {
  return DecodedImage{height, width, channels,
                      std::vector<uint8_t>(static_cast<size_t>(height) * width * channels, value)};
}

// Writes `contents` to `path`, creating its folders.
inline void WriteFile(const std::string& path, const std::string& contents) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  ASSERT_TRUE(WriteFileContents(path, contents).ok()) << path;
}

// Writes a PNG (whatever the extension of `path`) of Uniform(height, width, 3, value).
inline void WritePng(const std::string& path, int height, int width, uint8_t value) {
  WriteFile(path, *EncodePng(Uniform(height, width, 3, value)));
}

}  // namespace testing_image_folder
}  // namespace mobilenet

#endif  // MOBILENET_INPUT_IMAGE_FOLDER_TESTING_H_
