// Reader for the IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/):
// a big-endian header (magic 0x00000803 for uint8 images [n, rows, cols], 0x00000801 for
// uint8 labels [n]) followed by the raw bytes. Files may be gzip-compressed; compression
// is detected from the gzip magic bytes, never from the file name.
//
// Every error is an absl::Status whose message starts with the file's path and says what
// was expected and what was found, e.g.
//   ".../train-images-idx3-ubyte.gz: magic 0x00000803 expected, got 0x00000801".
#ifndef MOBILENET_WORKER_IDX_READER_H_
#define MOBILENET_WORKER_IDX_READER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/dataset.h"

namespace mobilenet {

inline constexpr uint32_t kIdxImagesMagic = 0x00000803;
inline constexpr uint32_t kIdxLabelsMagic = 0x00000801;
inline constexpr char kDefaultFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";
inline constexpr int kFashionMnistClasses = 10;

// The whole content of `path`, inflated if it starts with the gzip magic (0x1f 0x8b);
// concatenated gzip members are joined. NotFound if the file does not exist,
// PermissionDenied or FailedPrecondition if it cannot be opened, DataLoss for a read
// error, a corrupt or truncated gzip stream or bytes after it that are not gzip.
absl::StatusOr<std::string> ReadMaybeGzippedFile(const std::string& path);

struct IdxImages {
  int count = 0;
  int rows = 0;
  int cols = 0;
  std::vector<uint8_t> pixels;  // [count, rows, cols]
};

// Reads an image file (magic 0x00000803). InvalidArgument for a wrong magic, a header
// shorter than 16 bytes, a dimension above 2^31 - 1 or rows or cols of 0 (a count of 0 is
// allowed); DataLoss if the pixel data is not exactly count * rows * cols bytes
// ("expected N bytes of pixel data, got M"), and errors of ReadMaybeGzippedFile.
absl::StatusOr<IdxImages> ReadIdxImages(const std::string& path);

// Reads a label file (magic 0x00000801), errors as ReadIdxImages.
absl::StatusOr<std::vector<uint8_t>> ReadIdxLabels(const std::string& path);

// Reads an image file and its label file into a Dataset of rows x cols x 1 images.
// Errors as the readers, plus InvalidArgument if the counts differ or a label is outside
// [0, num_classes); both messages name the files.
absl::StatusOr<Dataset> LoadIdxDataset(const std::string& images_path,
                                       const std::string& labels_path, int num_classes);

enum class DatasetSplit { kTrain, kTest };

// Fashion-MNIST from `dir` ("train-images-idx3-ubyte.gz" / "train-labels-idx1-ubyte.gz"
// for kTrain, "t10k-..." for kTest): 60000 or 10000 28x28x1 images, 10 classes.
// A file without the ".gz" suffix is used when the ".gz" one does not exist.
// Errors as LoadIdxDataset.
absl::StatusOr<Dataset> LoadFashionMnist(const std::string& dir, DatasetSplit split);

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_IDX_READER_H_
