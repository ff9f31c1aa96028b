#include "input/image_folder_source.h"

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "input/image_decoder.h"
#include "input/labeled_images.h"

namespace mobilenet {
namespace {

namespace fs = std::filesystem;

absl::Status ListingError(const fs::path& dir, const std::error_code& error) {
  const std::string message = absl::StrCat(dir.string(), ": cannot list: ", error.message());
  if (error == std::errc::no_such_file_or_directory) return absl::NotFoundError(message);
  if (error == std::errc::permission_denied) return absl::PermissionDeniedError(message);
  return absl::FailedPreconditionError(message);
}

bool IsFolder(const fs::path& path) {
  std::error_code error;
  return fs::is_directory(path, error);
}

// The entries of `dir` that `keep` accepts, sorted byte-wise; *ignored counts the others.
template <typename Keep>
absl::StatusOr<std::vector<std::string>> ListSorted(const fs::path& dir, Keep keep, int* ignored) {
  std::error_code error;
  fs::directory_iterator it(dir, error);
  std::vector<std::string> names;
  for (; !error && it != fs::directory_iterator(); it.increment(error)) {
    std::string name = it->path().filename().string();
    if (keep(*it, name)) {
      names.push_back(std::move(name));
    } else {
      ++*ignored;
    }
  }
  if (error) return ListingError(dir, error);
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<std::vector<std::string>> ListClassFolders(const fs::path& dir, int* ignored) {
  return ListSorted(
      dir,
      [](const fs::directory_entry& entry, const std::string& name) {
        std::error_code error;
        return name[0] != '.' && entry.is_directory(error);
      },
      ignored);
}

absl::StatusOr<std::vector<std::string>> ListImageFiles(const fs::path& dir, int* ignored) {
  return ListSorted(
      dir,
      [](const fs::directory_entry& entry, const std::string& name) {
        std::error_code error;
        return HasImageExtension(name) && entry.is_regular_file(error);
      },
      ignored);
}

}  // namespace

bool HasImageExtension(const std::string& file_name) {
  const std::string lower = absl::AsciiStrToLower(file_name);
  return absl::EndsWith(lower, ".jpg") || absl::EndsWith(lower, ".jpeg") ||
         absl::EndsWith(lower, ".png");
}

absl::StatusOr<std::unique_ptr<ImageFolderSource>> ImageFolderSource::Open(
    const std::string& data_dir, const std::string& split, int channels) {
  RETURN_IF_ERROR(CheckSplit("image folder split", split));
  if (channels != 1 && channels != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("image folder channels must be 1 or 3, got ", channels));
  }
  const fs::path root(data_dir);
  const fs::path train_dir = root / "train";
  const std::string layout =
      absl::StrCat(" (expected ", data_dir, "/{train,test or val}/<class>/*.{jpg,jpeg,png})");
  if (!IsFolder(train_dir)) {
    return absl::NotFoundError(absl::StrCat(train_dir.string(), ": no such folder", layout));
  }
  fs::path split_dir = train_dir;
  if (split == "test") {
    split_dir = root / "test";
    if (!IsFolder(split_dir)) split_dir = root / "val";
    if (!IsFolder(split_dir)) {
      return absl::NotFoundError(absl::StrCat("neither ", (root / "test").string(), " nor ",
                                              split_dir.string(), " is a folder", layout));
    }
  }
  int ignored = 0;
  int ignored_in_train = 0;
  ASSIGN_OR_RETURN(std::vector<std::string> class_names,
                   ListClassFolders(train_dir, &ignored_in_train));
  if (class_names.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(train_dir.string(), ": no class folders", layout));
  }
  std::vector<std::string> split_classes = class_names;
  if (split_dir != train_dir) {
    ASSIGN_OR_RETURN(split_classes, ListClassFolders(split_dir, &ignored));
    const absl::flat_hash_set<std::string> known(class_names.begin(), class_names.end());
    for (const std::string& name : split_classes) {
      if (!known.contains(name)) {
        return absl::FailedPreconditionError(absl::StrCat(
            (split_dir / name).string(), ": class \"", name, "\" is not a folder of ",
            train_dir.string(), ", whose classes are ", absl::StrJoin(class_names, ", ")));
      }
    }
  } else {
    ignored = ignored_in_train;
  }
  std::vector<Image> images;
  for (const std::string& name : split_classes) {
    const fs::path class_dir = split_dir / name;
    int others = 0;
    ASSIGN_OR_RETURN(const std::vector<std::string> files, ListImageFiles(class_dir, &others));
    if (files.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(class_dir.string(), ": class folder without a .jpg, .jpeg or .png file (",
                       others, " other entries)"));
    }
    ignored += others;
    const int label = static_cast<int>(
        std::lower_bound(class_names.begin(), class_names.end(), name) - class_names.begin());
    for (const std::string& file : files) images.push_back({(class_dir / file).string(), label});
  }
  return std::unique_ptr<ImageFolderSource>(new ImageFolderSource(
      split_dir.string(), std::move(class_names), std::move(images), channels, ignored, 0));
}

std::unique_ptr<ImageFolderSource> ImageFolderSource::Without(
    const std::vector<int>& indices) const {
  std::vector<bool> excluded(images_.size(), false);
  for (int index : indices) {
    MOBILENET_CHECK(index >= 0 && index < size());
    excluded[index] = true;
  }
  std::vector<Image> kept;
  for (size_t i = 0; i < images_.size(); ++i) {
    if (!excluded[i]) kept.push_back(images_[i]);
  }
  const int removed = size() - static_cast<int>(kept.size());
  return std::unique_ptr<ImageFolderSource>(
      new ImageFolderSource(split_dir_, class_names_, std::move(kept), channels_, ignored_files_,
                            excluded_images_ + removed));
}

ImageFolderSource::ImageFolderSource(std::string split_dir, std::vector<std::string> class_names,
                                     std::vector<Image> images, int channels, int ignored_files,
                                     int excluded_images)
    : split_dir_(std::move(split_dir)),
      class_names_(std::move(class_names)),
      images_(std::move(images)),
      channels_(channels),
      ignored_files_(ignored_files),
      excluded_images_(excluded_images) {}

int ImageFolderSource::label(int index) const {
  MOBILENET_CHECK(index >= 0 && index < size());
  return images_[index].label;
}

const std::string& ImageFolderSource::path(int index) const {
  MOBILENET_CHECK(index >= 0 && index < size());
  return images_[index].path;
}

absl::StatusOr<DecodedImage> ImageFolderSource::Load(int index) const {
  return DecodeImageFile(path(index), channels_);
}

std::vector<int> ImageFolderSource::class_counts() const {
  std::vector<int> counts(class_names_.size(), 0);
  for (const Image& image : images_) ++counts[image.label];
  return counts;
}

}  // namespace mobilenet
