// An EvaluationSource over an ImageSource (e.g. the test folder of an image data set):
// each image loaded and preprocessed in turn, in the source's order, exactly once a pass.
#ifndef MOBILENET_WORKER_IMAGE_EVALUATION_READER_H_
#define MOBILENET_WORKER_IMAGE_EVALUATION_READER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "input/image_source.h"
#include "worker/dataset.h"
#include "worker/evaluation_reader.h"
#include "worker/prefetching_batch_source.h"

namespace mobilenet {

// Not thread-safe.
class ImageEvaluationReader : public EvaluationSource {
 public:
  // Reads the first `max_examples` images of `source` (all if 0 or more than it holds),
  // each through `preprocess` (called with seed 0: it must be deterministic, e.g. the
  // central-crop path) into `output_shape`. InvalidArgument if source is null, a dimension
  // of output_shape is < 1 or max_examples < 0.
  static absl::StatusOr<std::unique_ptr<ImageEvaluationReader>> Create(
      std::shared_ptr<const ImageSource> source, ImageShape output_shape,
      PreprocessFunction preprocess, int max_examples = 0);

  // Errors of Load and preprocess name the image (ImageSource::Describe); the pass then
  // continues after it.
  absl::StatusOr<int> NextBatch(int max_batch, float* images, int* labels) override;
  void Reset() override { position_ = 0; }
  int size() const override { return size_; }
  ImageShape output_shape() const override { return output_shape_; }
  int num_classes() const override { return source_->num_classes(); }

 private:
  ImageEvaluationReader(std::shared_ptr<const ImageSource> source, ImageShape output_shape,
                        PreprocessFunction preprocess, int size);

  std::shared_ptr<const ImageSource> source_;
  ImageShape output_shape_;
  PreprocessFunction preprocess_;
  int size_;
  int position_ = 0;
};

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_IMAGE_EVALUATION_READER_H_
