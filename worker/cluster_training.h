// A worker of distributed training: the same training loop as single-process training
// (worker/trainer.h), against the parameter servers through a ParameterClient (gRPC in
// mobilenet-worker, in-process in tests), on this worker's disjoint shard of the training
// data.
//
// Elastic workers (max_workers > 0) share the data set instead: parameter server 0 leases
// its blocks to whichever worker asks, so a worker may join at any time and the blocks of
// a worker that left are trained by the others (see LeaseRequest).
//
// Every worker trains `epochs` epochs of its own shard (so the cluster as a whole trains
// `epochs` epochs of the data set), less what it did before: the servers' ledgers count
// the examples of every push they applied from it, and keep that count in their
// checkpoints, so a worker that is killed and restarted, or a whole cluster restarted on
// the same checkpoint folder, continues its share where it ended, at that place of its
// data. Worker 0 is the chief: it also evaluates on the test set (periodically and at the
// end) and reports every result to the servers (Status shows it); when done it waits for
// the other live workers to finish, evaluates the final weights, exports the ONNX model
// and tells the servers training is complete, so they checkpoint and exit. The others
// tell the servers they are done and exit. A stop request (SIGTERM) ends the worker after
// its step in progress, without telling the servers it finished: a restart resumes it.
#ifndef MOBILENET_WORKER_CLUSTER_TRAINING_H_
#define MOBILENET_WORKER_CLUSTER_TRAINING_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/cluster_spec.h"
#include "model/architecture.h"
#include "parameter_server/core/sharding_plan.h"
#include "worker/parameter_client.h"
#include "worker/trainer.h"
#include "worker/training_data.h"

namespace mobilenet {

struct ClusterTrainingOptions {
  ClusterSpec cluster;             // job worker; task_index is the worker id
  MobileNetConfig model;           // num_classes/input_channels are taken from the data
  // Loop, loss and gradient settings; worker_id is set from the cluster, epochs are of this
  // worker's shard.
  TrainerConfig trainer;
  // This worker's shard of the training data (and, for the chief, the test set) as opened
  // by OpenTrainingData (worker/training_data.h) with shard task_index of num_workers and
  // a seed that is the same on every worker; the model's num_classes are the data's.
  // Required unless synthetic.
  std::shared_ptr<TrainingData> data;
  bool synthetic = false;          // random data of the model's shape instead (no evaluation)
  int synthetic_classes = 10;
  int64_t synthetic_examples = 10000;  // per epoch, split among the workers
  uint64_t data_seed = 1;              // of the synthetic data
  int threads = 2;
  // The chief also evaluates every this many seconds (on a second thread); 0: off.
  double eval_every_secs = 0;
  // The chief waits at most this long for the other workers to finish before ending the
  // training; a worker not seen for worker_liveness is not waited for.
  absl::Duration wait_for_workers = absl::Minutes(10);
  absl::Duration worker_liveness = absl::Seconds(30);
  std::string export_onnx;         // chief only; empty: no export
  // Elastic workers (--max_workers > 0): worker ids [0, max_workers) may train, also
  // beyond cluster.worker_hosts; instead of a fixed shard, the worker trains the blocks of
  // data->make_block_source that parameter server 0 leases it (worker/leased_batch_source.h),
  // until the run's trainer.epochs (a whole number) epochs of the data set are trained.
  int max_workers = 0;
  int data_block_examples = 1024;  // examples per leased block (the same on every worker)
  bool quiet = false;              // no progress line
  // When *stop becomes true (e.g. on SIGTERM) the worker ends after its step in progress
  // (see Trainer::set_stop_flag); not owned, may be null.
  const std::atomic<bool>* stop = nullptr;
  // The model's class names (index i names class i), reported by the chief with its
  // evaluations so the servers' checkpoints carry them; empty: unknown.
  std::vector<std::string> class_names;
  // Called after each step with where its time went (e.g. for metrics); may be empty.
  std::function<void(const StepTiming&)> on_step;
};

// Connects to the parameter servers of `plan` (the plan of the model the data implies).
using ConnectToServers =
    std::function<absl::StatusOr<std::unique_ptr<ParameterClient>>(const ShardingPlan& plan)>;

struct ClusterTrainingResult {
  TrainingSummary summary;         // this worker's steps; the chief's final evaluation
  double epochs = 0;               // of its shard this worker trained in this run
  int64_t examples_before = 0;     // of its share, trained before it joined
  bool stopped = false;            // ended by the stop flag; the share is not finished
  std::string onnx_path;           // chief, when exported
  WeightsKind onnx_weights = WeightsKind::kRaw;  // what it holds: the average when kept
  bool chief = false;
};

// Trains as worker options.cluster.task_index against the servers `connect` reaches.
// Errors name the failing part: the data, a model the servers do not hold (plan
// fingerprint mismatch), a server unreachable beyond the client's patience, a
// non-finite gradient.
absl::StatusOr<ClusterTrainingResult> RunClusterTraining(const ClusterTrainingOptions& options,
                                                         const ConnectToServers& connect);

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_CLUSTER_TRAINING_H_
