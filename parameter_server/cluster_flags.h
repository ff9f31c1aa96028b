// The command-line flags mobilenet-ps and mobilenet-worker share, defined once: the
// cluster (TensorFlow-1 style), the model, and the optimizer, schedule and seed that the
// parameter servers apply (a worker training alone applies them itself). Every process
// of a cluster must be given the same values; the sharding plan's fingerprint catches a
// different model or PS count, not a different learning rate.
#ifndef MOBILENET_PARAMETER_SERVER_CLUSTER_FLAGS_H_
#define MOBILENET_PARAMETER_SERVER_CLUSTER_FLAGS_H_

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/cluster_spec.h"
#include "model/architecture.h"
#include "parameter_server/core/parameter_shard.h"
#include "parameter_server/core/sync_replicas.h"

ABSL_DECLARE_FLAG(std::string, ps_hosts);
ABSL_DECLARE_FLAG(std::string, worker_hosts);
ABSL_DECLARE_FLAG(std::string, job_name);
ABSL_DECLARE_FLAG(int, task_index);
ABSL_DECLARE_FLAG(double, alpha);
ABSL_DECLARE_FLAG(int, resolution);
ABSL_DECLARE_FLAG(int, channels);
ABSL_DECLARE_FLAG(bool, shallow);
ABSL_DECLARE_FLAG(std::string, optimizer);
ABSL_DECLARE_FLAG(double, learning_rate);
ABSL_DECLARE_FLAG(std::string, lr_decay);
ABSL_DECLARE_FLAG(double, lr_cosine_epochs);
ABSL_DECLARE_FLAG(double, lr_warmup_epochs);
ABSL_DECLARE_FLAG(double, lr_decay_factor);
ABSL_DECLARE_FLAG(double, epochs_per_decay);
ABSL_DECLARE_FLAG(bool, staircase);
ABSL_DECLARE_FLAG(double, momentum);
ABSL_DECLARE_FLAG(double, rmsprop_decay);
ABSL_DECLARE_FLAG(double, rmsprop_epsilon);
ABSL_DECLARE_FLAG(double, bn_moving_average_decay);
ABSL_DECLARE_FLAG(double, weight_ema_decay);
ABSL_DECLARE_FLAG(bool, sync_replicas);
ABSL_DECLARE_FLAG(std::string, replicas_to_aggregate);
ABSL_DECLARE_FLAG(double, worker_liveness_secs);
ABSL_DECLARE_FLAG(int, max_workers);
ABSL_DECLARE_FLAG(int64_t, seed);

namespace mobilenet {

// The file defining the flags, for a binary's --help filter.
bool IsClusterFlagsFile(absl::string_view path);

// --ps_hosts, --worker_hosts, --job_name and --task_index as a cluster description.
ClusterDescription ClusterDescriptionFromSharedFlags();

// --alpha, --resolution, --channels and --shallow into `config` (num_classes untouched).
void ModelFromSharedFlags(MobileNetConfig& config);

// --seed, --optimizer, the RMSprop/momentum flags, the learning-rate schedule (not its
// examples_per_epoch), --bn_moving_average_decay and --weight_ema_decay into `config`
// (their ranges are checked by ParameterShard::Create). InvalidArgument
// naming --optimizer for an unknown optimizer; `config` is then unchanged.
absl::Status ShardConfigFromSharedFlags(ParameterShardConfig& config);

// --sync_replicas, --replicas_to_aggregate (for a cluster of `num_workers`, or with
// elastic workers of up to `max_workers` > 0 members: N at most that, and by default the
// `num_workers` of --worker_hosts) and --worker_liveness_secs. InvalidArgument naming the
// flag: a liveness <= 0, an N out of range, or --replicas_to_aggregate without
// --sync_replicas.
absl::StatusOr<SyncReplicasConfig> SyncReplicasFromSharedFlags(int num_workers,
                                                               int max_workers = 0);

// The most member slots --max_workers may ask for (each costs the servers a ledger record
// and, under delay compensation or --sync_replicas, a model-sized buffer when used).
inline constexpr int kMaxElasticWorkers = 256;

// --max_workers for a cluster whose --worker_hosts lists `num_workers`: 0 (no elastic
// workers) or the member slots, in [num_workers, kMaxElasticWorkers]; InvalidArgument
// naming the flag otherwise.
absl::StatusOr<int> MaxWorkersFromSharedFlags(int num_workers);

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CLUSTER_FLAGS_H_
