// One pass over a test set in its stored order without augmentation, in batches, for
// evaluation: the EvaluationSource interface, and EvaluationReader, which reads an in-memory
// Dataset (e.g. the Fashion-MNIST test split).
#ifndef MOBILENET_WORKER_EVALUATION_READER_H_
#define MOBILENET_WORKER_EVALUATION_READER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "worker/dataset.h"
#include "worker/preprocessing.h"

namespace mobilenet {

// A test set read once per pass. Not thread-safe: one reader per evaluating thread.
class EvaluationSource {
 public:
  virtual ~EvaluationSource() = default;

  // Writes the next min(max_batch, remaining) examples (images NHWC of output_shape(),
  // labels) and returns how many; 0 once the pass is over. InvalidArgument if
  // max_batch < 1 or a pointer is null; other errors name the example that failed.
  virtual absl::StatusOr<int> NextBatch(int max_batch, float* images, int* labels) = 0;
  // Starts the pass again from the first example.
  virtual void Reset() = 0;
  // Examples in one pass.
  virtual int size() const = 0;
  virtual ImageShape output_shape() const = 0;
  virtual int num_classes() const = 0;
};

// Not thread-safe.
class EvaluationReader : public EvaluationSource {
 public:
  // Reads the first `max_examples` examples of `dataset` (all of them if max_examples is 0
  // or more than the data set holds), resized and normalized as `config` says; its
  // random_flip and crop_padding are ignored, so the training config can be passed as is.
  // `dataset` is shared, not copied. Errors of ImagePreprocessor::Create;
  // InvalidArgument if max_examples < 0.
  static absl::StatusOr<EvaluationReader> Create(std::shared_ptr<const Dataset> dataset,
                                                 const PreprocessingConfig& config,
                                                 int max_examples = 0);

  absl::StatusOr<int> NextBatch(int max_batch, float* images, int* labels) override;
  void Reset() override { position_ = 0; }
  int size() const override { return size_; }
  ImageShape output_shape() const override { return preprocessor_.output_shape(); }
  int num_classes() const override { return dataset_->num_classes(); }

  int position() const { return position_; }
  int remaining() const { return size_ - position_; }

 private:
  EvaluationReader(std::shared_ptr<const Dataset> dataset, ImagePreprocessor preprocessor,
                   int size);

  std::shared_ptr<const Dataset> dataset_;
  ImagePreprocessor preprocessor_;
  int size_;
  int position_ = 0;
};

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_EVALUATION_READER_H_
