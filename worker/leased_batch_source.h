// Elastic workers (--max_workers): a BatchSource over whichever blocks of the run's data
// parameter server 0 leases this worker (parameter_server/core/data_leases.h), instead of
// a fixed shard.
//
// The data set is cut into the plan's blocks_per_epoch blocks, block b being
// DataShard::Create(num_examples, b, blocks_per_epoch, seed): disjoint random parts that
// together cover it. A lease names (epoch, block); its examples are served in the block's
// order of that epoch with that epoch's augmentation, exactly as a fixed shard would serve
// them. When a block's last example is handed out, the next NextBatch reports it
// completed with the request for the next lease, so a worker that dies loses at most the
// batch in progress; a block it held is leased to another worker. A batch runs on across
// blocks; when the server says the run's data is done, a batch already begun is topped up
// with the last block's next examples (its following epoch order), and the next NextBatch
// returns OutOfRange.
#ifndef MOBILENET_WORKER_LEASED_BATCH_SOURCE_H_
#define MOBILENET_WORKER_LEASED_BATCH_SOURCE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mobilenet/ps/v1/parameter_server.pb.h"
#include "worker/batch_source.h"
#include "worker/data_shard.h"

namespace mobilenet {

// Asks for the next lease (ParameterClient::LeaseData for this worker and plan).
using LeaseFunction = std::function<absl::StatusOr<ps::v1::LeaseResponse>(
    const std::vector<ps::v1::DataBlock>& completed, const std::vector<ps::v1::DataBlock>& held)>;
// Makes the source serving one block (a DataShard of the whole data set); the leased
// source skips it to the lease's epoch.
using BlockSourceFactory =
    std::function<absl::StatusOr<std::unique_ptr<BatchSource>>(const DataShard& block)>;

struct LeasedDataOptions {
  ps::v1::DataPlan plan;
  // What examples_per_epoch() reports: this worker's nominal share of an epoch (the data
  // set over the --worker_hosts count), so progress and the chief's evaluation cadence
  // read as with fixed shards. >= 1.
  int64_t examples_per_epoch = 1;
  // How long to wait before asking again when the server says LEASE_WAIT.
  absl::Duration wait_poll = absl::Milliseconds(500);
  // When it becomes true, a NextBatch waiting for a lease returns Cancelled. May be null.
  const std::atomic<bool>* stop = nullptr;
};

// Not thread-safe, like every BatchSource.
class LeasedBatchSource : public BatchSource {
 public:
  // InvalidArgument for a plan out of range (CheckDataPlan), a missing function or
  // examples_per_epoch < 1. `shape` and `num_classes` are what the block sources serve.
  static absl::StatusOr<std::unique_ptr<LeasedBatchSource>> Create(
      LeaseFunction lease, BlockSourceFactory make_block, ImageShape shape, int num_classes,
      const LeasedDataOptions& options);

  // As BatchSource::NextBatch; OutOfRange once the server said the run's data is done
  // and the last batch was handed out. Errors of the lease call (the client's, after its
  // retries) and of the block sources; Cancelled when stopped while waiting.
  absl::Status NextBatch(int batch_size, float* images, int* labels) override;

  ImageShape output_shape() const override { return shape_; }
  int num_classes() const override { return num_classes_; }
  int64_t examples_per_epoch() const override { return options_.examples_per_epoch; }
  // Of the nominal share: handed-out examples over examples_per_epoch().
  int64_t epoch() const override { return handed_out_ / options_.examples_per_epoch; }
  int64_t position() const override { return handed_out_ % options_.examples_per_epoch; }
  // Only moves the count of handed-out examples: where the run's data stands is the
  // server's to say.
  void SkipTo(int64_t examples) override { handed_out_ = examples; }
  bool endless() const override { return false; }

  const ps::v1::DataPlan& plan() const { return options_.plan; }
  // Blocks completed by this worker (reported or about to be), and leases taken.
  int64_t blocks_completed() const { return blocks_completed_; }
  int64_t leases() const { return leases_; }

 private:
  LeasedBatchSource(LeaseFunction lease, BlockSourceFactory make_block, ImageShape shape,
                    int num_classes, const LeasedDataOptions& options);

  // Reports the finished block and takes the next lease, waiting while the server says
  // LEASE_WAIT; sets done_ on LEASE_DONE.
  absl::Status NextLease();

  LeaseFunction lease_;
  BlockSourceFactory make_block_;
  ImageShape shape_;
  int num_classes_;
  LeasedDataOptions options_;
  std::unique_ptr<BatchSource> block_source_;  // the current (or last) block's
  ps::v1::DataBlock block_;
  int64_t block_remaining_ = 0;               // of the current block, not handed out yet
  std::vector<ps::v1::DataBlock> completed_;  // not reported yet
  bool done_ = false;
  int64_t handed_out_ = 0;
  int64_t blocks_completed_ = 0;
  int64_t leases_ = 0;
};

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_LEASED_BATCH_SOURCE_H_
