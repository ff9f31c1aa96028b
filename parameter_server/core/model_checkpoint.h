// Model checkpoints as the parameter servers and the single-process trainer write and
// mobilenet-ctl reads them: a parameter
// shard's state (weights, optimizer slots, moving statistics, counters) stored in the
// checkpoint file format of common/checkpoint.h, with the model configuration in the
// metadata so a checkpoint alone is enough to rebuild, evaluate or export the model.
//
// Tensor names: a whole tensor keeps its layout name and shape; a slice of one (a
// parameter server holding part of a tensor) is stored flat as "<name>@<begin>:<end>".
// A parameter server's ledger (cluster_ledger.h) is stored as counters "ledger.*" and
// "evaluation.*"; a checkpoint without them (written before they existed) restores with
// all its progress unattributed. The class names the chief reported, when known, are
// metadata "class_names", one per line (common/class_names.h). Server 0's data leases
// (elastic workers, data_leases.h) are counters "leases.*" and metadata
// "leases.open_blocks" (comma-separated global block indices); none: no plan fixed yet.
#ifndef MOBILENET_PARAMETER_SERVER_CORE_MODEL_CHECKPOINT_H_
#define MOBILENET_PARAMETER_SERVER_CORE_MODEL_CHECKPOINT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/checkpoint.h"
#include "model/architecture.h"
#include "model/parameter_layout.h"
#include "parameter_server/core/cluster_ledger.h"
#include "parameter_server/core/parameter_shard.h"
#include "parameter_server/core/shard_checkpointer.h"
#include "parameter_server/core/sharding_plan.h"

namespace mobilenet {

// Writes the model configuration into checkpoint metadata ("model.alpha", ...).
void PutModelConfig(const MobileNetConfig& config, Checkpoint* checkpoint);
// Reads it back; InvalidArgument naming the missing or malformed key.
absl::StatusOr<MobileNetConfig> GetModelConfig(const Checkpoint& checkpoint,
                                               const std::string& path);

// A checkpoint of a shard's exported state: counters "version" and "examples_seen", and
// the model configuration. `layouts` give whole tensors their shapes.
Checkpoint ShardStateToCheckpoint(const ShardState& state, const MobileNetConfig& config,
                                  const ParameterLayout& parameters,
                                  const ParameterLayout& state_layout);
// The reverse, for ParameterShard::RestoreState. InvalidArgument for a malformed slice
// name.
absl::StatusOr<ShardState> CheckpointToShardState(const Checkpoint& checkpoint);

// The class names of metadata "class_names" (none when absent), checked with
// CheckClassNames for `num_classes` (-1: any count); InvalidArgument naming `path`.
absl::StatusOr<std::vector<std::string>> GetClassNames(const Checkpoint& checkpoint,
                                                       const std::string& path, int num_classes);

// Writes `ledger` into the checkpoint's counters and metadata.
void PutLedger(const LedgerState& ledger, Checkpoint* checkpoint);
// Reads it back. A checkpoint without a ledger gives one with no worker records and
// `version` pushes and `examples_seen` examples unattributed. InvalidArgument naming
// `path` and the key for a missing or malformed entry.
absl::StatusOr<LedgerState> GetLedger(const Checkpoint& checkpoint, const std::string& path,
                                      int64_t version, int64_t examples_seen);

// How parameter server `task_index` of `plan` (computed for `model`) stores its state:
// ShardStateToCheckpoint and PutLedger plus metadata "optimizer", "ps_task" ("<i>/<n>")
// and "plan_fingerprint"; decoding refuses (FailedPrecondition naming the path and both
// models) a checkpoint of another model configuration rather than half-restoring it.
ShardCheckpointCodec ModelShardCheckpointCodec(const MobileNetConfig& model,
                                               const ShardingPlan& plan,
                                               const std::string& optimizer_name,
                                               int task_index);

// A whole model assembled from one or more checkpoints.
struct LoadedModel {
  MobileNetConfig config;
  std::vector<float> parameters;  // BuildParameterLayout(arch) order
  std::vector<float> state;       // BuildStateLayout(arch) order
  int64_t global_step = 0;        // the smallest "version" among the files
  std::vector<std::string> files; // what was read
  // The class names the files carry (index i names class i); empty: not known.
  std::vector<std::string> class_names;
};

// Loads a model from `path`: a checkpoint file, or a directory holding checkpoint series
// (the newest valid "<prefix>-<step>.mnck" of every prefix is read, e.g. one per
// parameter-server shard). Every element of every weight and moving statistic must be
// covered; errors name the file or the uncovered tensor. All files must agree on the model
// configuration. `weights` kAverage reads the weight average
// ("<tensor>/ExponentialMovingAverage") into `parameters` instead of the weights:
// FailedPrecondition when the files hold none (written with --weight_ema_decay=0).
// Class names come from any file holding them; files naming the classes differently are
// refused (FailedPrecondition naming both), invalid names too (InvalidArgument, the file).
absl::StatusOr<LoadedModel> LoadModel(const std::string& path,
                                      WeightsKind weights = WeightsKind::kRaw);

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CORE_MODEL_CHECKPOINT_H_
