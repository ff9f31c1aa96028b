// `mobilenet-ctl convert-data`: writes Fashion-MNIST (IDX files) as the data sets the
// readers of input/ take, so tests and demonstrations have image folders and CIFAR
// binaries without downloading any; and the bridge between input/'s LabeledImages and the
// worker's Dataset.
#ifndef MOBILENET_WORKER_DATA_CONVERSION_H_
#define MOBILENET_WORKER_DATA_CONVERSION_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "input/labeled_images.h"
#include "worker/dataset.h"

namespace mobilenet {

enum class ConversionTarget {
  kImageFolderPng,   // OUT/{train,test}/<class>/<index>.png, lossless
  kImageFolderJpeg,  // the same as .jpg, quality 95
  kCifar,            // CIFAR-10 binaries: 28x28 centered on black in 32x32, gray as RGB
};

// "image_folder_png", "image_folder_jpeg" or "cifar"; InvalidArgument naming them otherwise.
absl::StatusOr<ConversionTarget> ParseConversionTarget(const std::string& name);

// Fashion-MNIST's class names as folder names, prefixed by the label ("0_T-shirt_top",
// "1_Trouser", ..., "9_Ankle_boot") so that their byte order is the label order.
const std::vector<std::string>& FashionMnistFolderNames();

// `dataset` with `class_names` (one per class of the dataset; checked).
LabeledImages ToLabeledImages(const Dataset& dataset, std::vector<std::string> class_names);

// A Dataset of `images` (the class names are dropped); errors of Dataset::Create.
absl::StatusOr<Dataset> ToDataset(LabeledImages images);

struct ConversionCounts {
  int train = 0;
  int test = 0;
};

// Reads Fashion-MNIST from `idx_dir` (LoadFashionMnist) and writes its train and test
// splits, the first `max_per_class` images of each class (all when <= 0), into `out_dir`
// (created) as `target`. Errors of reading and of the writers (input/dataset_writer.h),
// naming the file or folder.
absl::StatusOr<ConversionCounts> ConvertFashionMnist(const std::string& idx_dir,
                                                     ConversionTarget target,
                                                     const std::string& out_dir, int max_per_class);

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_DATA_CONVERSION_H_
