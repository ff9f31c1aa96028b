// A BatchSource that decodes and augments images on a pool of threads ahead of the trainer.
//
// The examples of a DataShard form one endless stream (epoch 0's order, then epoch 1's, ...);
// stream position e is example e % size() of epoch e / size(). Worker threads claim the
// next unclaimed position, Load its image from the ImageSource and preprocess it with a
// seed of DataShard::AugmentationSeed(epoch, index), outside any lock, and leave the result
// in the position's slot of a ring of prefetch_batches * batch_size slots; NextBatch takes
// the slots in stream order. A position is claimed only once every position a ring's
// length earlier has been handed out, so the batches are the same whatever the number of
// threads or their timing: those of a single-threaded loop over the stream.
//
// Memory: at most prefetch_batches * batch_size + threads + 1 preprocessed images
// (the ring, one being written per thread, one being copied out by NextBatch) and
// `threads` decoded images at once.
#ifndef MOBILENET_WORKER_PREFETCHING_BATCH_SOURCE_H_
#define MOBILENET_WORKER_PREFETCHING_BATCH_SOURCE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "input/image_source.h"
#include "worker/batch_source.h"
#include "worker/data_shard.h"
#include "worker/dataset.h"

namespace mobilenet {

// Writes the preprocessed `image` (the source's output_shape().elements() floats, HWC) to
// `out`, every random choice fixed by `seed`; an error says what is wrong with the image.
// Called from several threads at once.
using PreprocessFunction =
    std::function<absl::Status(const DecodedImage& image, uint64_t seed, float* out)>;

// `status` with image `index` of `source` named in front of its message (Describe), unless
// the message names it already; OK stays OK.
absl::Status NameImageInError(const ImageSource& source, int index, absl::Status status);

struct PrefetchOptions {
  int threads = 2;           // decoding and preprocessing threads (--input_threads)
  int batch_size = 32;       // the batch size NextBatch is usually called with
  int prefetch_batches = 4;  // batches of that size prepared ahead (--prefetch_batches)
};

// Not thread-safe, like every BatchSource: one consumer calls NextBatch, SkipTo and the
// accessors; the worker threads are internal.
class PrefetchingBatchSource : public BatchSource {
 public:
  // Starts the threads. `source` is shared; `preprocess` must write output_shape floats.
  // InvalidArgument if source is null, the shard was made for another number of examples
  // than source->size(), a dimension of output_shape or an option is < 1.
  static absl::StatusOr<std::unique_ptr<PrefetchingBatchSource>> Create(
      std::shared_ptr<const ImageSource> source, DataShard shard, ImageShape output_shape,
      PreprocessFunction preprocess, const PrefetchOptions& options);

  // Stops the threads: each finishes the image it is working on (its result is dropped).
  ~PrefetchingBatchSource() override;

  // As BatchSource::NextBatch (any batch_size works; batch_size of the options only sizes
  // the prefetch ring). Blocks until the examples are ready. An error of loading or
  // preprocessing an example is returned naming the image (ImageSource::Describe); the
  // examples of the batch up to and including the failed one count as handed out, so
  // calling again continues after it.
  absl::Status NextBatch(int batch_size, float* images, int* labels) override;

  ImageShape output_shape() const override { return output_shape_; }
  int num_classes() const override { return source_->num_classes(); }
  int64_t examples_per_epoch() const override { return shard_.size(); }
  int64_t epoch() const override;
  int64_t position() const override;
  // Drops the prepared examples and restarts the threads at the new position.
  void SkipTo(int64_t examples) override;

 private:
  // One ring entry: the result for stream position `example` once a worker finished it.
  struct Slot {
    int64_t example = -1;  // -1: empty
    absl::Status status;
    int label = 0;
    std::vector<float> image;
  };

  PrefetchingBatchSource(std::shared_ptr<const ImageSource> source, DataShard shard,
                         ImageShape output_shape, PreprocessFunction preprocess, int64_t ring_size);
  void WorkerLoop();
  // The data-set index at stream position `example` (>= the one NextBatch hands out next).
  int IndexAt(int64_t example) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Loads and preprocesses data-set example `index` of `epoch` into `out`.
  absl::Status Prepare(int index, int64_t epoch, std::vector<float>* out) const;

  const std::shared_ptr<const ImageSource> source_;
  const DataShard shard_;
  const ImageShape output_shape_;
  const PreprocessFunction preprocess_;
  const int64_t ring_size_;

  mutable absl::Mutex mu_;
  absl::CondVar claimable_;  // signalled when a position may become claimable, or stopping_
  absl::CondVar ready_;      // signalled when a slot is filled
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Incremented by SkipTo; a result claimed under an older generation is dropped.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_out_ ABSL_GUARDED_BY(mu_) = 0;     // the stream position NextBatch takes next
  int64_t next_claim_ ABSL_GUARDED_BY(mu_) = 0;   // the position a worker claims next
  std::vector<Slot> slots_ ABSL_GUARDED_BY(mu_);  // position e lives in e % ring_size_
  // Epoch orders from next_out_'s epoch on, made when first needed.
  std::map<int64_t, std::vector<int>> orders_ ABSL_GUARDED_BY(mu_);

  std::vector<float> taken_;  // NextBatch's: the image it copies out, swapped with a slot's
  std::vector<std::thread> threads_;
};

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_PREFETCHING_BATCH_SOURCE_H_
