// Checking every file of an image folder before training (--skip_bad_images), so that a
// damaged or unsupported file is reported up front instead of failing a batch mid-run.
#ifndef MOBILENET_INPUT_IMAGE_FOLDER_SCAN_H_
#define MOBILENET_INPUT_IMAGE_FOLDER_SCAN_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "input/image_decoder.h"
#include "input/image_folder_source.h"

namespace mobilenet {

enum class ImageCheck {
  kHeader,  // format, header and size limits only: fast, misses damaged pixel data
  kDecode,  // the whole image: slow, finds everything Load would fail on
};

struct BadImage {
  int index = 0;  // in the scanned source
  std::string path;
  absl::Status status;  // why; its message starts with the path
};

struct ImageFolderScan {
  // headers[i]: image i's header, or nullopt when it is bad.
  std::vector<std::optional<ImageHeader>> headers;
  std::vector<BadImage> bad;  // ascending index
};

// Reads every file of `source` and checks it as `check` says. Never fails: a file that
// cannot be read or decoded is listed in `bad`.
ImageFolderScan ScanImageFolder(const ImageFolderSource& source, ImageCheck check);

struct CheckedImageFolder {
  std::unique_ptr<ImageFolderSource> source;  // without the bad images
  std::vector<BadImage> skipped;              // indices are those of the folder before skipping
};

// ImageFolderSource::Open, then ScanImageFolder, then the source without the bad images
// (source->excluded_images() counts them). Errors of Open; FailedPrecondition naming the
// folder if every image is bad.
absl::StatusOr<CheckedImageFolder> OpenImageFolderSkippingBadImages(const std::string& data_dir,
                                                                    const std::string& split,
                                                                    int channels, ImageCheck check);

// "skipped N bad images of DIR:" and one line per image ("  PATH: reason"), at most
// `max_listed` of them and then "  ... and M more"; empty if `skipped` is.
std::string DescribeSkippedImages(const std::string& split_dir,
                                  const std::vector<BadImage>& skipped, int max_listed = 20);

}  // namespace mobilenet

#endif  // MOBILENET_INPUT_IMAGE_FOLDER_SCAN_H_
