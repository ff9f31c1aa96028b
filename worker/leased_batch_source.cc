#include "worker/leased_batch_source.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "parameter_server/core/data_leases.h"

namespace mobilenet {

absl::StatusOr<std::unique_ptr<LeasedBatchSource>> LeasedBatchSource::Create(
    LeaseFunction lease, BlockSourceFactory make_block, ImageShape shape, int num_classes,
    const LeasedDataOptions& options) {
  if (!lease || !make_block) {
    return absl::InvalidArgumentError("leased batch source: no lease function or block factory");
  }
  if (options.examples_per_epoch < 1) {
    return absl::InvalidArgumentError("leased batch source: examples_per_epoch must be >= 1");
  }
  RETURN_IF_ERROR(CheckDataPlan(options.plan));
  return std::unique_ptr<LeasedBatchSource>(
      new LeasedBatchSource(std::move(lease), std::move(make_block), shape, num_classes, options));
}

LeasedBatchSource::LeasedBatchSource(LeaseFunction lease, BlockSourceFactory make_block,
                                     ImageShape shape, int num_classes,
                                     const LeasedDataOptions& options)
    : lease_(std::move(lease)),
      make_block_(std::move(make_block)),
      shape_(shape),
      num_classes_(num_classes),
      options_(options) {}

absl::Status LeasedBatchSource::NextLease() {
  const ps::v1::DataPlan& plan = options_.plan;
  while (true) {
    ASSIGN_OR_RETURN(const ps::v1::LeaseResponse response, lease_(completed_, {}));
    completed_.clear();
    switch (response.outcome()) {
      case ps::v1::LEASE_GRANTED: {
        const ps::v1::DataBlock& block = response.block();
        if (block.epoch() < 0 || block.epoch() >= plan.epochs() || block.block() < 0 ||
            block.block() >= plan.blocks_per_epoch()) {
          return absl::InternalError(absl::StrFormat(
              "parameter server 0 leased block %d of epoch %d, outside the plan of %d blocks "
              "for %d epochs",
              block.block(), block.epoch(), plan.blocks_per_epoch(), plan.epochs()));
        }
        ASSIGN_OR_RETURN(const DataShard shard,
                         DataShard::Create(static_cast<int>(plan.num_examples()), block.block(),
                                           plan.blocks_per_epoch(), plan.seed()));
        ASSIGN_OR_RETURN(block_source_, make_block_(shard));
        // The block's order and augmentation of the lease's epoch.
        block_source_->SkipTo(static_cast<int64_t>(block.epoch()) * shard.size());
        block_ = block;
        block_remaining_ = shard.size();
        ++leases_;
        return absl::OkStatus();
      }
      case ps::v1::LEASE_DONE:
        done_ = true;
        return absl::OkStatus();
      case ps::v1::LEASE_WAIT:
        break;
      default:
        return absl::InternalError(absl::StrCat("parameter server 0 answered a lease with outcome ",
                                                static_cast<int>(response.outcome())));
    }
    // Blocks held by other workers may still come back (one of them may leave).
    const absl::Time until = absl::Now() + options_.wait_poll;
    while (absl::Now() < until) {
      if (options_.stop != nullptr && options_.stop->load()) {
        return absl::CancelledError("stopped while waiting for a data lease");
      }
      absl::SleepFor(std::min(absl::Milliseconds(50), until - absl::Now()));
    }
  }
}

absl::Status LeasedBatchSource::NextBatch(int batch_size, float* images, int* labels) {
  RETURN_IF_ERROR(CheckNextBatchArguments(batch_size, images, labels));
  if (done_) return absl::OutOfRangeError("the run's data is trained (every leased block done)");
  const int64_t image_floats = shape_.elements();
  int filled = 0;
  while (filled < batch_size) {
    if (block_remaining_ == 0 && !done_) {
      RETURN_IF_ERROR(NextLease());
      if (done_ && filled == 0) {
        return absl::OutOfRangeError("the run's data is trained (every leased block done)");
      }
    }
    // After the last lease: a begun batch is topped up from the last block's next epoch.
    const int take =
        done_ ? batch_size - filled
              : static_cast<int>(std::min<int64_t>(batch_size - filled, block_remaining_));
    RETURN_IF_ERROR(
        block_source_->NextBatch(take, images + filled * image_floats, labels + filled));
    filled += take;
    if (!done_) {
      block_remaining_ -= take;
      if (block_remaining_ == 0) {
        // Reported with the next lease request (kept until one is answered).
        completed_.push_back(block_);
        ++blocks_completed_;
      }
    }
  }
  handed_out_ += batch_size;
  return absl::OkStatus();
}

}  // namespace mobilenet
