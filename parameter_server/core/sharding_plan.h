// Which parameter server holds which ranges of the model: a deterministic plan that every
// process (parameter servers, workers, tools) computes identically from the model and the
// number of PS tasks, so nothing about the placement travels over the wire except its
// fingerprint.
//
// Placement: every tensor of both layouts (trainable parameters and batch-norm moving
// statistics) larger than a size threshold is split into near-equal slices no larger
// than it; then all pieces, largest first, go to the least-loaded server (by bytes).
// The threshold is 4% of the mean bytes per server, which bounds every server's load to
// within 4% of the mean (the last piece placed on the most loaded server went to the
// least loaded one at the time).
#ifndef MOBILENET_PARAMETER_SERVER_CORE_SHARDING_PLAN_H_
#define MOBILENET_PARAMETER_SERVER_CORE_SHARDING_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/architecture.h"
#include "model/parameter_layout.h"
#include "parameter_server/core/parameter_shard.h"

namespace mobilenet {

// The canonical text of a model configuration, used in plan fingerprints, Status and
// error messages: "alpha=1 resolution=224 channels=3 classes=1000" (alpha printed with
// up to 6 significant digits; " shallow" appended for the shallow variant).
std::string ModelConfigString(const MobileNetConfig& config);

// Inverse of ModelConfigString (for tools that learn the model from a server's Status).
// InvalidArgument quoting the text when it is not in that form.
absl::StatusOr<MobileNetConfig> ParseModelConfigString(absl::string_view text);

// "0123456789abcdef": 16 lowercase hex digits, as fingerprints appear in messages.
std::string FormatFingerprint(uint64_t fingerprint);

// Immutable after Create; copyable; thread-safe to read.
class ShardingPlan {
 public:
  // The plan for the MobileNet-V1 of `config` over `num_shards` parameter servers.
  // InvalidArgument for num_shards outside [1, 1024] or a config BuildArchitecture
  // refuses (its message).
  static absl::StatusOr<ShardingPlan> Create(const MobileNetConfig& config, int num_shards);

  // The plan for arbitrary layouts (tests, other models). `model` is the text the
  // fingerprint covers and messages name (e.g. ModelConfigString). InvalidArgument for
  // num_shards outside [1, 1024] or an empty parameter layout.
  static absl::StatusOr<ShardingPlan> CreateForLayouts(const ParameterLayout& parameters,
                                                       const ParameterLayout& state,
                                                       int num_shards, std::string model);

  int num_shards() const { return static_cast<int>(shards_.size()); }
  // What server `index` holds, in [0, num_shards()) (checked); its slices in the order
  // every buffer exchanged with that server concatenates them.
  const ShardSpec& shard(int index) const;
  const std::vector<ShardSpec>& shards() const { return shards_; }
  // Bytes (float32 parameters + state) held by server `index` (checked).
  int64_t shard_bytes(int index) const;

  const ParameterLayout& parameter_layout() const { return parameters_; }
  const ParameterLayout& state_layout() const { return state_; }
  const std::string& model() const { return model_; }

  // FNV-1a 64 over a canonical text of (model, num_shards, every shard's slices): equal
  // in every process and build that computes the same plan, different (with
  // overwhelming probability) for a different model or PS count.
  uint64_t fingerprint() const { return fingerprint_; }

  // Pieces larger than this many floats were split.
  int64_t max_slice_floats() const { return max_slice_floats_; }

 private:
  ShardingPlan() = default;

  ParameterLayout parameters_;
  ParameterLayout state_;
  std::string model_;
  std::vector<ShardSpec> shards_;
  std::vector<int64_t> shard_bytes_;
  int64_t max_slice_floats_ = 0;
  uint64_t fingerprint_ = 0;
};

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CORE_SHARDING_PLAN_H_
