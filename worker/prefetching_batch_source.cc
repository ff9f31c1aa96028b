#include "worker/prefetching_batch_source.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace mobilenet {

absl::Status NameImageInError(const ImageSource& source, int index, absl::Status status) {
  if (status.ok()) return status;
  const std::string where = source.Describe(index);
  if (absl::StrContains(status.message(), where)) return status;
  return absl::Status(status.code(), absl::StrCat(where, ": ", status.message()));
}

absl::StatusOr<std::unique_ptr<PrefetchingBatchSource>> PrefetchingBatchSource::Create(
    std::shared_ptr<const ImageSource> source, DataShard shard, ImageShape output_shape,
    PreprocessFunction preprocess, const PrefetchOptions& options) {
  if (source == nullptr) {
    return absl::InvalidArgumentError("prefetching batch source: no image source");
  }
  if (shard.num_examples() != source->size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefetching batch source: shard made for ", shard.num_examples(),
                     " examples, but the image source has ", source->size()));
  }
  if (output_shape.height < 1 || output_shape.width < 1 || output_shape.channels < 1) {
    return absl::InvalidArgumentError(absl::StrCat("prefetching batch source: output shape ",
                                                   output_shape.DebugString(),
                                                   " must have every dimension >= 1"));
  }
  if (!preprocess) {
    return absl::InvalidArgumentError("prefetching batch source: no preprocessing function");
  }
  if (options.threads < 1 || options.batch_size < 1 || options.prefetch_batches < 1) {
    return absl::InvalidArgumentError(absl::StrCat("prefetching batch source: threads (",
                                                   options.threads, "), batch_size (",
                                                   options.batch_size, ") and prefetch_batches (",
                                                   options.prefetch_batches, ") must be >= 1"));
  }
  std::unique_ptr<PrefetchingBatchSource> batches(new PrefetchingBatchSource(
      std::move(source), std::move(shard), output_shape, std::move(preprocess),
      int64_t{options.batch_size} * options.prefetch_batches));
  for (int t = 0; t < options.threads; ++t) {
    batches->threads_.emplace_back([b = batches.get()] { b->WorkerLoop(); });
  }
  return batches;
}

PrefetchingBatchSource::PrefetchingBatchSource(std::shared_ptr<const ImageSource> source,
                                               DataShard shard, ImageShape output_shape,
                                               PreprocessFunction preprocess, int64_t ring_size)
    : source_(std::move(source)),
      shard_(std::move(shard)),
      output_shape_(output_shape),
      preprocess_(std::move(preprocess)),
      ring_size_(ring_size),
      slots_(ring_size) {}

PrefetchingBatchSource::~PrefetchingBatchSource() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    claimable_.SignalAll();
  }
  for (std::thread& thread : threads_) thread.join();
}

int PrefetchingBatchSource::IndexAt(int64_t example) {
  const int64_t per_epoch = shard_.size();
  const int64_t epoch = example / per_epoch;
  auto it = orders_.find(epoch);
  if (it == orders_.end()) it = orders_.emplace(epoch, shard_.EpochOrder(epoch)).first;
  return it->second[example % per_epoch];
}

absl::Status PrefetchingBatchSource::Prepare(int index, int64_t epoch,
                                             std::vector<float>* out) const {
  absl::StatusOr<DecodedImage> image = source_->Load(index);
  absl::Status status = image.status();
  if (status.ok()) {
    out->resize(output_shape_.elements());
    status = preprocess_(*image, shard_.AugmentationSeed(epoch, index), out->data());
  }
  return NameImageInError(*source_, index, std::move(status));
}

void PrefetchingBatchSource::WorkerLoop() {
  std::vector<float> buffer;
  for (;;) {
    int64_t example;
    uint64_t generation;
    int index;
    {
      absl::MutexLock lock(&mu_);
      while (!stopping_ && next_claim_ >= next_out_ + ring_size_) claimable_.Wait(&mu_);
      if (stopping_) return;
      example = next_claim_++;
      generation = generation_;
      index = IndexAt(example);
    }
    absl::Status status = Prepare(index, example / shard_.size(), &buffer);
    const int label = source_->label(index);
    absl::MutexLock lock(&mu_);
    if (generation != generation_) continue;  // SkipTo moved the stream
    Slot& slot = slots_[example % ring_size_];
    slot.example = example;
    slot.status = std::move(status);
    slot.label = label;
    slot.image.swap(buffer);
    ready_.Signal();  // only NextBatch waits on it
  }
}

absl::Status PrefetchingBatchSource::NextBatch(int batch_size, float* images, int* labels) {
  absl::Status checked = CheckNextBatchArguments(batch_size, images, labels);
  if (!checked.ok()) return checked;
  const int64_t image_floats = output_shape_.elements();
  for (int b = 0; b < batch_size; ++b) {
    absl::Status status;
    {
      absl::MutexLock lock(&mu_);
      Slot* slot = &slots_[next_out_ % ring_size_];
      while (slot->example != next_out_) ready_.Wait(&mu_);
      status = std::move(slot->status);
      labels[b] = slot->label;
      taken_.swap(slot->image);
      slot->example = -1;
      ++next_out_;
      // Orders of finished epochs are not needed again.
      const int64_t epoch = next_out_ / shard_.size();
      while (!orders_.empty() && orders_.begin()->first < epoch) orders_.erase(orders_.begin());
      claimable_.Signal();  // one more position may be claimed
    }
    if (!status.ok()) return status;
    std::copy(taken_.begin(), taken_.end(), images + b * image_floats);
  }
  return absl::OkStatus();
}

int64_t PrefetchingBatchSource::epoch() const {
  absl::MutexLock lock(&mu_);
  return next_out_ / shard_.size();
}

int64_t PrefetchingBatchSource::position() const {
  absl::MutexLock lock(&mu_);
  return next_out_ % shard_.size();
}

void PrefetchingBatchSource::SkipTo(int64_t examples) {
  MOBILENET_CHECK(examples >= 0);
  absl::MutexLock lock(&mu_);
  ++generation_;
  next_out_ = examples;
  next_claim_ = examples;
  for (Slot& slot : slots_) slot.example = -1;
  orders_.clear();
  claimable_.SignalAll();
}

}  // namespace mobilenet
