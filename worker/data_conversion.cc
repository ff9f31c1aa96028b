#include "worker/data_conversion.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "input/dataset_writer.h"
#include "worker/idx_reader.h"

namespace mobilenet {

absl::StatusOr<ConversionTarget> ParseConversionTarget(const std::string& name) {
  if (name == "image_folder_png") return ConversionTarget::kImageFolderPng;
  if (name == "image_folder_jpeg") return ConversionTarget::kImageFolderJpeg;
  if (name == "cifar") return ConversionTarget::kCifar;
  return absl::InvalidArgumentError(absl::StrCat(
      "--to must be image_folder_png, image_folder_jpeg or cifar, got \"", name, "\""));
}

const std::vector<std::string>& FashionMnistFolderNames() {
  static const std::vector<std::string>* const kNames = new std::vector<std::string>{
      "0_T-shirt_top", "1_Trouser", "2_Pullover", "3_Dress", "4_Coat",
      "5_Sandal",      "6_Shirt",   "7_Sneaker",  "8_Bag",   "9_Ankle_boot"};
  return *kNames;
}

LabeledImages ToLabeledImages(const Dataset& dataset, std::vector<std::string> class_names) {
  MOBILENET_CHECK(static_cast<int>(class_names.size()) == dataset.num_classes());
  LabeledImages images;
  images.height = dataset.shape().height;
  images.width = dataset.shape().width;
  images.channels = dataset.shape().channels;
  images.pixels = dataset.pixels();
  images.labels = dataset.labels();
  images.class_names = std::move(class_names);
  return images;
}

absl::StatusOr<Dataset> ToDataset(LabeledImages images) {
  return Dataset::Create(ImageShape{images.height, images.width, images.channels},
                         static_cast<int>(images.class_names.size()), std::move(images.pixels),
                         std::move(images.labels));
}

absl::StatusOr<ConversionCounts> ConvertFashionMnist(const std::string& idx_dir,
                                                     ConversionTarget target,
                                                     const std::string& out_dir,
                                                     int max_per_class) {
  ConversionCounts counts;
  for (const DatasetSplit split : {DatasetSplit::kTrain, DatasetSplit::kTest}) {
    ASSIGN_OR_RETURN(const Dataset dataset, LoadFashionMnist(idx_dir, split));
    const LabeledImages images =
        FirstPerClass(ToLabeledImages(dataset, FashionMnistFolderNames()), max_per_class);
    const std::string name = split == DatasetSplit::kTrain ? "train" : "test";
    switch (target) {
      case ConversionTarget::kImageFolderPng:
        RETURN_IF_ERROR(WriteImageFolder(images, out_dir, name, ImageFileFormat::kPng));
        break;
      case ConversionTarget::kImageFolderJpeg:
        RETURN_IF_ERROR(WriteImageFolder(images, out_dir, name, ImageFileFormat::kJpeg, 95));
        break;
      case ConversionTarget::kCifar:
        RETURN_IF_ERROR(WriteCifar(images, out_dir, name));
        break;
    }
    (split == DatasetSplit::kTrain ? counts.train : counts.test) = images.size();
  }
  return counts;
}

}  // namespace mobilenet
