// Where a training loop gets its batches: the BatchSource interface, and ShardBatchSource,
// which serves one worker's shard of an in-memory data set with augmentation.
#ifndef MOBILENET_WORKER_BATCH_SOURCE_H_
#define MOBILENET_WORKER_BATCH_SOURCE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/data_shard.h"
#include "worker/dataset.h"
#include "worker/preprocessing.h"

namespace mobilenet {

// An endless stream of labelled float images organized in epochs. Implementations are
// not thread-safe: one consumer calls NextBatch.
class BatchSource {
 public:
  virtual ~BatchSource() = default;

  // Writes the next batch_size examples: images [batch_size, H, W, C] NHWC with
  // (H, W, C) = output_shape(), labels [batch_size] in [0, num_classes()). A batch that
  // runs past the end of an epoch continues with the first examples of the next one.
  // InvalidArgument (and no state change) if batch_size < 1 or a pointer is null.
  virtual absl::Status NextBatch(int batch_size, float* images, int* labels) = 0;

  virtual ImageShape output_shape() const = 0;
  virtual int num_classes() const = 0;
  virtual int64_t examples_per_epoch() const = 0;
  // The epoch (0-based) of the next example NextBatch will hand out.
  virtual int64_t epoch() const = 0;
  // How many examples of epoch() were handed out already, in [0, examples_per_epoch()).
  virtual int64_t position() const = 0;

  // Continues as if `examples` (>= 0) examples had been handed out since creation: the
  // next one is example position() = examples % examples_per_epoch() of epoch() =
  // examples / examples_per_epoch(), as after a run of a worker that trained that many (a
  // restarted worker resumes its data where its pushes end).
  virtual void SkipTo(int64_t examples) = 0;

  // True: the stream never ends (a fixed shard, epoch after epoch; the training loop
  // decides when to stop). False: NextBatch returns OutOfRange once the data is done
  // (leased data), which ends the training loop.
  virtual bool endless() const { return true; }

  // Examples handed out since creation.
  int64_t examples_seen() const { return epoch() * examples_per_epoch() + position(); }
};

// Hands every call to `inner` (not owned; it must outlive this): the base of decorators
// that change one thing, e.g. watch each batch.
class ForwardingBatchSource : public BatchSource {
 public:
  explicit ForwardingBatchSource(BatchSource* inner) : inner_(inner) {}

  absl::Status NextBatch(int batch_size, float* images, int* labels) override {
    return inner_->NextBatch(batch_size, images, labels);
  }
  ImageShape output_shape() const override { return inner_->output_shape(); }
  int num_classes() const override { return inner_->num_classes(); }
  int64_t examples_per_epoch() const override { return inner_->examples_per_epoch(); }
  int64_t epoch() const override { return inner_->epoch(); }
  int64_t position() const override { return inner_->position(); }
  void SkipTo(int64_t examples) override { inner_->SkipTo(examples); }
  bool endless() const override { return inner_->endless(); }

 protected:
  BatchSource* inner() const { return inner_; }

 private:
  BatchSource* inner_;
};

// The argument check of BatchSource::NextBatch: InvalidArgument if batch_size < 1 or a
// pointer is null.
absl::Status CheckNextBatchArguments(int batch_size, const float* images, const int* labels);

// Serves the examples of one DataShard in the shard's per-epoch order, each passed through
// the ImagePreprocessor with an augmentation drawn from (shard seed, epoch, example index),
// so the data of a run depend only on the seed, not on batch sizes. Not thread-safe.
class ShardBatchSource : public BatchSource {
 public:
  // `dataset` is shared, not copied. InvalidArgument if the shard was made for a different
  // number of examples than dataset->size(); errors of ImagePreprocessor::Create for
  // `config` and the data set's image shape.
  static absl::StatusOr<std::unique_ptr<ShardBatchSource>> Create(
      std::shared_ptr<const Dataset> dataset, DataShard shard, const PreprocessingConfig& config);

  absl::Status NextBatch(int batch_size, float* images, int* labels) override;
  ImageShape output_shape() const override { return preprocessor_.output_shape(); }
  int num_classes() const override { return dataset_->num_classes(); }
  int64_t examples_per_epoch() const override { return shard_.size(); }
  int64_t epoch() const override { return epoch_; }
  int64_t position() const override { return position_; }
  void SkipTo(int64_t examples) override;

  const DataShard& shard() const { return shard_; }

 private:
  ShardBatchSource(std::shared_ptr<const Dataset> dataset, DataShard shard,
                   ImagePreprocessor preprocessor);

  std::shared_ptr<const Dataset> dataset_;
  DataShard shard_;
  ImagePreprocessor preprocessor_;
  int64_t epoch_ = 0;
  int64_t position_ = 0;
  std::vector<int> order_;  // data-set indices in the order of epoch_
};

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_BATCH_SOURCE_H_
