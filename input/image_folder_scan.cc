#include "input/image_folder_scan.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_contents.h"
#include "common/status_macros.h"

namespace mobilenet {
namespace {

absl::StatusOr<ImageHeader> CheckImageFile(const std::string& path, int channels,
                                           ImageCheck check) {
  ASSIGN_OR_RETURN(const std::string bytes, ReadFileContents(path));
  ASSIGN_OR_RETURN(ImageHeader header, ReadImageHeader(bytes, path));
  if (check == ImageCheck::kDecode) RETURN_IF_ERROR(DecodeImage(bytes, channels, path).status());
  return header;
}

}  // namespace

ImageFolderScan ScanImageFolder(const ImageFolderSource& source, ImageCheck check) {
  ImageFolderScan scan;
  scan.headers.resize(source.size());
  for (int i = 0; i < source.size(); ++i) {
    absl::StatusOr<ImageHeader> header = CheckImageFile(source.path(i), source.channels(), check);
    if (header.ok()) {
      scan.headers[i] = std::move(*header);
    } else {
      scan.bad.push_back({i, source.path(i), header.status()});
    }
  }
  return scan;
}

absl::StatusOr<CheckedImageFolder> OpenImageFolderSkippingBadImages(const std::string& data_dir,
                                                                    const std::string& split,
                                                                    int channels,
                                                                    ImageCheck check) {
  ASSIGN_OR_RETURN(std::unique_ptr<ImageFolderSource> all,
                   ImageFolderSource::Open(data_dir, split, channels));
  CheckedImageFolder checked;
  checked.skipped = ScanImageFolder(*all, check).bad;
  if (checked.skipped.size() == static_cast<size_t>(all->size())) {
    return absl::FailedPreconditionError(
        absl::StrCat(all->split_dir(), ": none of its ", all->size(), " images is readable; ",
                     DescribeSkippedImages(all->split_dir(), checked.skipped, 3)));
  }
  std::vector<int> indices;
  for (const BadImage& bad : checked.skipped) indices.push_back(bad.index);
  checked.source = all->Without(indices);
  return checked;
}

std::string DescribeSkippedImages(const std::string& split_dir,
                                  const std::vector<BadImage>& skipped, int max_listed) {
  if (skipped.empty()) return "";
  std::string text = absl::StrCat("skipped ", skipped.size(), " bad image",
                                  skipped.size() == 1 ? "" : "s", " of ", split_dir, ":");
  for (size_t i = 0; i < skipped.size() && i < static_cast<size_t>(max_listed); ++i) {
    absl::StrAppend(&text, "\n  ", skipped[i].status.message());
  }
  if (skipped.size() > static_cast<size_t>(max_listed)) {
    absl::StrAppend(&text, "\n  ... and ", skipped.size() - max_listed, " more");
  }
  return text;
}

}  // namespace mobilenet
