// An ImageSource over an in-memory Dataset (e.g. IDX files), so the image pipeline can
// run on data sets that are already decoded, and benchmarks can feed it without decoding.
#ifndef MOBILENET_WORKER_DATASET_IMAGE_SOURCE_H_
#define MOBILENET_WORKER_DATASET_IMAGE_SOURCE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "input/image_source.h"
#include "worker/dataset.h"

namespace mobilenet {

// Immutable; thread-safe. Image i is a copy of dataset->image(i), classes are named "0",
// "1", ... and Describe(i) is "<name> record i".
class DatasetImageSource : public ImageSource {
 public:
  // `dataset` is shared, not copied; `name` names it in messages (e.g. its file).
  // InvalidArgument if dataset is null.
  static absl::StatusOr<std::unique_ptr<DatasetImageSource>> Create(
      std::shared_ptr<const Dataset> dataset, std::string name);

  int size() const override { return dataset_->size(); }
  int num_classes() const override { return dataset_->num_classes(); }
  const std::vector<std::string>& class_names() const override { return class_names_; }
  int label(int index) const override { return dataset_->label(index); }
  // OutOfRange (naming the index) if index is outside [0, size()).
  absl::StatusOr<DecodedImage> Load(int index) const override;
  int channels() const override { return dataset_->shape().channels; }
  std::string Describe(int index) const override;

 private:
  DatasetImageSource(std::shared_ptr<const Dataset> dataset, std::string name);

  std::shared_ptr<const Dataset> dataset_;
  std::string name_;
  std::vector<std::string> class_names_;
};

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_DATASET_IMAGE_SOURCE_H_
