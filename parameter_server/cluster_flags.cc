#include "parameter_server/cluster_flags.h"

#include <algorithm>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/optimizer.h"

// Cluster.
ABSL_FLAG(std::string, ps_hosts, "",
          "Cluster: comma-separated host:port of every parameter server, task 0 first; the "
          "same list in every process.");
ABSL_FLAG(std::string, worker_hosts, "",
          "Cluster: comma-separated host:port of every worker, the same list in every "
          "process; worker 0 is the chief (evaluates, exports, ends the training). Workers "
          "listen on nothing: only the number and order of the entries count.");
ABSL_FLAG(std::string, job_name, "",
          "Cluster: this process's job, \"ps\" (mobilenet-ps) or \"worker\" "
          "(mobilenet-worker).");
ABSL_FLAG(int, task_index, -1,
          "Cluster: this process's index in its job's host list (default 0); worker i trains "
          "data shard i of len(worker_hosts).");
// Model.
ABSL_FLAG(double, alpha, 0.5, "Width multiplier: channels are max(int(c * alpha), 8).");
ABSL_FLAG(int, resolution, 56,
          "Input resolution (the resolution multiplier rho times 224); images are resized "
          "to it.");
ABSL_FLAG(int, channels, 1, "Input channels (a 1-channel image is replicated if more).");
ABSL_FLAG(bool, shallow, false, "The paper's shallow variant (five 14x14x512 blocks removed).");
// Optimizer and schedule, applied by the parameter servers.
ABSL_FLAG(std::string, optimizer, "rmsprop", "rmsprop, momentum or sgd.");
ABSL_FLAG(double, learning_rate, 0.045, "Initial learning rate.");
ABSL_FLAG(std::string, lr_decay, "exponential",
          "Learning-rate decay: exponential (a factor every few epochs, see lr_decay_factor) "
          "or cosine (from the initial rate to 0 over lr_cosine_epochs).");
ABSL_FLAG(double, lr_cosine_epochs, 0,
          "Cosine decay: the epochs (of the whole training set) the rate takes to reach 0; "
          "give the run's epochs.");
ABSL_FLAG(double, lr_warmup_epochs, 0,
          "Linear learning-rate warm-up over this many epochs (0: none).");
ABSL_FLAG(double, lr_decay_factor, 0.8,
          "Exponential learning-rate decay factor (the paper's recipe: 0.94 every 2 epochs; "
          "faster here so that a short run ends at a small rate).");
ABSL_FLAG(double, epochs_per_decay, 1.0, "Epochs between decays.");
ABSL_FLAG(bool, staircase, true, "Decay in steps (TensorFlow's staircase) or smoothly.");
ABSL_FLAG(double, momentum, 0.9, "Momentum (momentum and rmsprop).");
ABSL_FLAG(double, rmsprop_decay, 0.9, "RMSprop decay (rho).");
ABSL_FLAG(double, rmsprop_epsilon, 1.0, "RMSprop epsilon.");
ABSL_FLAG(double, bn_moving_average_decay, 0.99, "Decay of the batch-norm moving statistics.");
ABSL_FLAG(double, weight_ema_decay, 0,
          "Decay of the exponential moving average of the weights the parameter servers keep "
          "(and checkpoint) beside them, e.g. 0.9999 as in the Inception-v3 recipe; warmed up "
          "as min(decay, (1 + step) / (10 + step)). The chief then evaluates both. 0: off.");
ABSL_FLAG(bool, sync_replicas, false,
          "Synchronous training: each step averages the gradients of --replicas_to_aggregate "
          "workers computed from the same weights and applies them as one update; the other "
          "workers are backups whose late gradients are dropped. Give it to every process.");
ABSL_FLAG(std::string, replicas_to_aggregate, "",
          "With --sync_replicas: gradients per step, N in [1, workers] (default: every worker, "
          "no backups), or all (every live worker: follows workers that stop answering).");
ABSL_FLAG(double, worker_liveness_secs, 30,
          "A worker not heard from for this long is not alive: the chief does not wait for "
          "it to finish, and with --sync_replicas a step says it waits for it.");
ABSL_FLAG(int, max_workers, 0,
          "Elastic workers: worker ids [0, N) may join the running job, also beyond "
          "--worker_hosts (start one with --task_index=K); parameter server 0 hands the "
          "training data out in blocks to whichever worker asks and takes back those of a "
          "worker not heard from for --worker_liveness_secs. 0: the workers of "
          "--worker_hosts, each training a fixed shard. Give it to every process.");
ABSL_FLAG(int64_t, seed, 1,
          "Seed of the weight initialization (the same in every process of a cluster) and "
          "of the workers' data order.");

namespace mobilenet {

bool IsClusterFlagsFile(absl::string_view path) {
  return absl::EndsWith(path, "/cluster_flags.cc");
}

ClusterDescription ClusterDescriptionFromSharedFlags() {
  return ClusterDescriptionFromFlags(absl::GetFlag(FLAGS_ps_hosts),
                                     absl::GetFlag(FLAGS_worker_hosts),
                                     absl::GetFlag(FLAGS_job_name),
                                     absl::GetFlag(FLAGS_task_index));
}

void ModelFromSharedFlags(MobileNetConfig& config) {
  config.alpha = static_cast<float>(absl::GetFlag(FLAGS_alpha));
  config.resolution = absl::GetFlag(FLAGS_resolution);
  config.input_channels = absl::GetFlag(FLAGS_channels);
  config.shallow = absl::GetFlag(FLAGS_shallow);
}

absl::Status ShardConfigFromSharedFlags(ParameterShardConfig& config) {
  absl::StatusOr<OptimizerKind> kind = ParseOptimizerKind(absl::GetFlag(FLAGS_optimizer));
  if (!kind.ok()) return absl::InvalidArgumentError(absl::StrCat("--optimizer: ", kind.status().message()));
  config.seed = static_cast<uint64_t>(absl::GetFlag(FLAGS_seed));
  config.optimizer.kind = *kind;
  config.optimizer.momentum = static_cast<float>(absl::GetFlag(FLAGS_momentum));
  config.optimizer.rmsprop_decay = static_cast<float>(absl::GetFlag(FLAGS_rmsprop_decay));
  config.optimizer.epsilon = static_cast<float>(absl::GetFlag(FLAGS_rmsprop_epsilon));
  config.learning_rate.initial_learning_rate =
      static_cast<float>(absl::GetFlag(FLAGS_learning_rate));
  absl::StatusOr<LearningRateDecay> decay = ParseLearningRateDecay(absl::GetFlag(FLAGS_lr_decay));
  if (!decay.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--lr_decay: ", decay.status().message()));
  }
  config.learning_rate.decay = *decay;
  config.learning_rate.cosine_epochs = static_cast<float>(absl::GetFlag(FLAGS_lr_cosine_epochs));
  config.learning_rate.warmup_epochs = static_cast<float>(absl::GetFlag(FLAGS_lr_warmup_epochs));
  config.learning_rate.decay_factor = static_cast<float>(absl::GetFlag(FLAGS_lr_decay_factor));
  config.learning_rate.epochs_per_decay =
      static_cast<float>(absl::GetFlag(FLAGS_epochs_per_decay));
  config.learning_rate.staircase = absl::GetFlag(FLAGS_staircase);
  config.moving_average_decay = static_cast<float>(absl::GetFlag(FLAGS_bn_moving_average_decay));
  config.weight_ema_decay = static_cast<float>(absl::GetFlag(FLAGS_weight_ema_decay));
  return absl::OkStatus();
}

}  // namespace mobilenet

namespace mobilenet {

absl::StatusOr<SyncReplicasConfig> SyncReplicasFromSharedFlags(int num_workers, int max_workers) {
  SyncReplicasConfig config;
  config.enabled = absl::GetFlag(FLAGS_sync_replicas);
  const double liveness = absl::GetFlag(FLAGS_worker_liveness_secs);
  if (!(liveness > 0)) {
    return absl::InvalidArgumentError("--worker_liveness_secs must be > 0");
  }
  config.worker_liveness = absl::Seconds(liveness);
  const std::string n = absl::GetFlag(FLAGS_replicas_to_aggregate);
  if (!config.enabled) {
    if (!n.empty()) {
      return absl::InvalidArgumentError(
          "--replicas_to_aggregate is for synchronous training: give --sync_replicas too");
    }
    return config;
  }
  // Elastic: N may count members that join later; by default, those of --worker_hosts.
  absl::StatusOr<int> parsed =
      n.empty() ? absl::StatusOr<int>(num_workers)
                : ParseReplicasToAggregate(n, std::max(num_workers, max_workers));
  if (!parsed.ok()) return parsed.status();
  config.replicas_to_aggregate = *parsed;
  return config;
}

absl::StatusOr<int> MaxWorkersFromSharedFlags(int num_workers) {
  const int max_workers = absl::GetFlag(FLAGS_max_workers);
  if (max_workers == 0) return 0;
  if (max_workers < num_workers || max_workers > kMaxElasticWorkers) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--max_workers=%d: must be 0 (no elastic workers) or in [%d, %d] (at least the %d "
        "workers of --worker_hosts)",
        max_workers, num_workers, kMaxElasticWorkers, num_workers));
  }
  return max_workers;
}

}  // namespace mobilenet
