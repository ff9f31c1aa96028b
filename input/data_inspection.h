// `mobilenet-ctl inspect-data`: what a data set on disk holds, so that a user can check it
// before training: images per class and split, the image sizes and encodings, and the
// files that cannot be read, with the reason.
#ifndef MOBILENET_INPUT_DATA_INSPECTION_H_
#define MOBILENET_INPUT_DATA_INSPECTION_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "input/image_folder_scan.h"

namespace mobilenet {

enum class DataFormat {
  kAuto,         // CIFAR when DATA_DIR holds CIFAR binaries, else an image folder
  kImageFolder,  // image_folder_source.h
  kCifar,        // cifar_reader.h
};

// "auto", "image_folder" or "cifar"; InvalidArgument naming the choices otherwise.
absl::StatusOr<DataFormat> ParseDataFormat(const std::string& name);
const char* DataFormatName(DataFormat format);

// The upper bounds (exclusive) of the shorter-side buckets of SplitInspection; the last
// bucket has none.
inline constexpr int kShorterSideBounds[] = {32, 64, 128, 256, 512, 1024};
inline constexpr int kShorterSideBuckets = 7;

struct SplitInspection {
  std::string split;     // "train" or "test"
  std::string location;  // the folder read (DATA_DIR/val for a test split there)
  // Not OK when the split could not be listed or read at all (e.g. no test folder); the
  // fields below are then empty.
  absl::Status status;
  int64_t images = 0;                 // readable or not
  std::vector<int64_t> class_counts;  // images per class, readable or not
  int64_t ignored_files = 0;          // not images (image folders)
  // Readable images by their shorter side: < 32, 32-63, ..., 512-1023, >= 1024.
  std::vector<int64_t> shorter_side = std::vector<int64_t>(kShorterSideBuckets, 0);
  // Readable images by exact size, keyed (width, height).
  std::map<std::pair<int, int>, int64_t> sizes;
  // Readable images by encoding, e.g. "JPEG YCbCr", "PNG palette", "CIFAR RGB".
  std::map<std::string, int64_t> encodings;
  std::vector<BadImage> unreadable;
};

struct DataInspection {
  std::string data_dir;
  DataFormat format = DataFormat::kAuto;  // as detected: never kAuto
  std::vector<std::string> class_names;
  std::vector<SplitInspection> splits;  // train, then test
};

// Inspects train and test of `data_dir`. Image folders are checked file by file as `check`
// says; CIFAR binaries as a whole. Returns the train split's error when it cannot be read
// (nothing to inspect); a test split that cannot be read is reported in its status.
absl::StatusOr<DataInspection> InspectData(const std::string& data_dir, DataFormat format,
                                           ImageCheck check);

// For people: per split, the counts per class, the size histogram (shorter side and the
// ten most common sizes), the encodings and at most `max_unreadable` unreadable files.
std::string FormatInspectionText(const DataInspection& inspection, int max_unreadable = 50);

// The same as one JSON object, every unreadable file included.
std::string FormatInspectionJson(const DataInspection& inspection);

}  // namespace mobilenet

#endif  // MOBILENET_INPUT_DATA_INSPECTION_H_
