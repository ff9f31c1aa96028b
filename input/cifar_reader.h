// Reader of the binary versions of CIFAR-10 and CIFAR-100
// (https://www.cs.toronto.edu/~kriz/cifar.html), as their archives unpack:
//   CIFAR-10:  data_batch_1.bin .. data_batch_5.bin (train), test_batch.bin (test),
//              batches.meta.txt (the 10 class names, one a line; optional)
//   CIFAR-100: train.bin, test.bin, fine_label_names.txt (the 100 names; optional)
// A record is the label byte (CIFAR-100: the coarse label byte, then the fine label byte,
// which is the one used) and 3072 pixel bytes: the 32x32 red plane, then green, then blue,
// rows top to bottom. Images come out 32x32x3 HWC, in file order. Without a names file the
// classes are named "0" .. "N-1".
#ifndef MOBILENET_INPUT_CIFAR_READER_H_
#define MOBILENET_INPUT_CIFAR_READER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "input/labeled_images.h"

namespace mobilenet {

inline constexpr int kCifarSide = 32;
inline constexpr int kCifarImageBytes = kCifarSide * kCifarSide * 3;

enum class CifarVariant { kCifar10, kCifar100 };

struct CifarFormat {
  int num_classes;
  int label_bytes;  // before the pixels of each record; the last one is the label
  const char* names_file;
  std::vector<std::string> train_files;
  std::vector<std::string> test_files;
};

// The file names and record layout of `variant`.
const CifarFormat& GetCifarFormat(CifarVariant variant);

// kCifar10 if `dir` has data_batch_1.bin, kCifar100 if it has train.bin. NotFound naming
// both when it has neither, InvalidArgument when it has both.
absl::StatusOr<CifarVariant> DetectCifarVariant(const std::string& dir);

// Reads `split` ("train" or "test") of the CIFAR data set in `dir`. InvalidArgument for
// another split; the errors of DetectCifarVariant; NotFound naming a missing file;
// DataLoss naming the file when its size is not a whole number of records (with the size
// and record size) or a label is out of range (with the record and the value);
// InvalidArgument when the names file does not have exactly num_classes names.
absl::StatusOr<LabeledImages> ReadCifar(const std::string& dir, const std::string& split);

}  // namespace mobilenet

#endif  // MOBILENET_INPUT_CIFAR_READER_H_
