// The state and logic of one parameter server, free of any transport: a set of slices of
// the model's trainable tensors with their optimizer slots, a set of slices of the
// batch-norm moving statistics, a version (global step) counter, the number of training
// examples seen and the learning-rate schedule evaluated on it. A gRPC service and an
// in-process client both adapt to this class.
#ifndef MOBILENET_PARAMETER_SERVER_PARAMETER_SHARD_H_
#define MOBILENET_PARAMETER_SERVER_PARAMETER_SHARD_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "common/learning_rate_schedule.h"
#include "common/optimizer.h"
#include "model/parameter_layout.h"
#include "parameter_server/staleness_histogram.h"

namespace mobilenet {

// Elements [begin, end) of one tensor (indices within the tensor, not the flat buffer).
struct TensorSlice {
  std::string tensor;  // a name in the layout
  int64_t begin = 0;
  int64_t end = 0;

  int64_t size() const { return end - begin; }
};

// What a shard holds. Every buffer a shard exchanges (pulled weights, pushed gradients,
// batch statistics) is its slices' elements concatenated in this order.
struct ShardSpec {
  std::vector<TensorSlice> parameters;  // of the trainable layout
  std::vector<TensorSlice> state;       // of the moving-statistics layout
};

// Every tensor of both layouts, whole, in layout order: the shard of a single parameter
// server. Its concatenated buffers are then exactly the layouts' flat buffers.
ShardSpec WholeModelShardSpec(const ParameterLayout& parameters, const ParameterLayout& state);

// What a shard does with a push computed from an old version.
enum class StalenessPolicy {
  kApply,              // apply as is
  kScaleLearningRate,  // learning rate / max(1, staleness) (Zhang et al., 2016)
  kReject,             // Aborted when staleness > max_staleness
};

// "apply", "scale" or "reject".
const char* StalenessPolicyName(StalenessPolicy policy);
// Parses StalenessPolicyName's spellings; otherwise InvalidArgument listing them.
absl::StatusOr<StalenessPolicy> ParseStalenessPolicy(absl::string_view text);

struct ParameterShardConfig {
  uint64_t seed = 0;  // of model/initializer.h; the same on every shard of a model
  OptimizerConfig optimizer;
  LearningRateScheduleConfig learning_rate;
  StalenessPolicy staleness_policy = StalenessPolicy::kApply;
  int64_t max_staleness = 16;  // kReject only; >= 0
  // moving = decay * moving + (1 - decay) * batch, once per push carrying batch
  // statistics. 0.99 averages over roughly the last 100 pushes, which settles within a
  // few hundred steps; TensorFlow's 0.9997 is meant for runs of ~100k steps and would
  // leave the statistics near their initial values in a short training. In [0, 1).
  float moving_average_decay = 0.99f;
  // Request ids remembered per worker for exactly-once retries; >= 1.
  int remembered_requests_per_worker = 64;
};

// One push as the shard sees it. The spans are not owned and must outlive the call.
struct ShardPushRequest {
  int32_t worker_id = 0;
  uint64_t request_id = 0;            // unique per worker; a retry reuses it
  int64_t computed_from_version = 0;  // the version returned by the pull
  int64_t example_count = 0;          // examples in the batch, >= 1
  // parameter_count() floats: d loss / d weights of this shard's parameter slices, in
  // spec order (weight decay and clipping, if any, already applied by the worker).
  absl::Span<const float> gradients;
  // Empty (leave the moving statistics alone) or state_count() floats in spec order: each
  // batch norm's batch mean (in its moving_mean slice) and UNBIASED batch variance (in its
  // moving_variance slice). The caller applies the M / (M - 1) correction, M = batch *
  // height * width, since only it knows the spatial size (see batch_statistics.h).
  absl::Span<const float> batch_stats;
};

struct ShardPushResult {
  int64_t version = 0;         // the shard's version once this push is counted
  int64_t staleness = 0;       // version before the push - computed_from_version
  float learning_rate = 0.0f;  // the rate the update used (after the staleness policy)
  bool duplicate = false;      // a retry answered from memory: nothing applied this time
};

struct ShardStatus {
  int64_t version = 0;
  int64_t examples_seen = 0;
  float learning_rate = 0.0f;  // the schedule at examples_seen
  int64_t pushes_applied = 0;
  int64_t pushes_rejected_stale = 0;  // kReject refusals
  int64_t pushes_invalid = 0;         // malformed requests and versions from the future
  int64_t pushes_duplicate = 0;       // retries answered from memory
  int64_t staleness_p50 = 0;          // over applied pushes
  int64_t staleness_p90 = 0;
  int64_t staleness_max = 0;
  double staleness_mean = 0.0;
  int64_t parameter_count = 0;
  int64_t state_count = 0;
};

// Elements [begin, end) of a named tensor, for checkpoints. Names are the layout's tensor
// names for weights and moving statistics, "<tensor>/<slot>" for optimizer slots (e.g.
// "MobilenetV1/Conv2d_0/weights/rms").
struct ShardTensor {
  std::string name;
  int64_t begin = 0;
  int64_t end = 0;
  std::vector<float> values;  // end - begin floats
};

// A shard's complete restorable state.
struct ShardState {
  int64_t version = 0;
  int64_t examples_seen = 0;
  std::vector<ShardTensor> tensors;
};

// Thread-safe. Pushes to different slices proceed in parallel (one lock per slice); the
// counters and the retry memory have their own lock. A pull may observe a concurrent push
// half-applied (as in any asynchronous parameter server); its version is read before the
// weights, so staleness is never under-counted.
class ParameterShard {
 public:
  // A shard holding `spec`'s slices, initialized with model/initializer.h from
  // config.seed (each slice equals the same range of a whole-model initialization), with
  // fresh optimizer slots, version 0 and no examples seen. InvalidArgument or NotFound
  // naming the problem for: an unknown tensor, a slice out of its tensor's range or
  // empty, overlapping slices, a moving statistic among the parameters or a trainable
  // tensor among the state, no parameter slices, or an invalid config value.
  static absl::StatusOr<std::unique_ptr<ParameterShard>> Create(const ParameterLayout& parameters,
                                                                const ParameterLayout& state,
                                                                const ShardSpec& spec,
                                                                const ParameterShardConfig& config);

  ParameterShard(const ParameterShard&) = delete;
  ParameterShard& operator=(const ParameterShard&) = delete;

  const ShardSpec& spec() const { return spec_; }
  const ParameterShardConfig& config() const { return config_; }
  // Floats in the concatenation of the parameter (state) slices.
  int64_t parameter_count() const { return parameter_count_; }
  int64_t state_count() const { return state_count_; }

  // Copies the current weights into `weights` (parameter_count() floats) and moving
  // statistics into `state` (state_count() floats, or empty to skip them); returns the
  // version read before copying. InvalidArgument if a span has the wrong size.
  absl::StatusOr<int64_t> Pull(absl::Span<float> weights, absl::Span<float> state) const;

  // Validates a push, then counts it (version + 1, examples seen + example_count) and
  // applies it: the optimizer with the schedule's rate at the examples seen before this
  // push (adjusted by the staleness policy), and the moving averages when batch_stats is
  // given. A retry (same worker_id and request_id as one of the worker's last
  // remembered_requests_per_worker applied pushes) changes nothing and returns the first
  // result. Errors change no weight, slot or statistic:
  //   InvalidArgument: wrong gradient or batch_stats size, a NaN or infinite value (named
  //     by tensor and index), example_count < 1, a negative version or one newer than the
  //     shard's (from the future);
  //   Aborted: kReject and staleness > max_staleness (the message names both); the
  //     worker should pull again.
  absl::StatusOr<ShardPushResult> ApplyGradients(const ShardPushRequest& push);

  // Counters and staleness percentiles.
  ShardStatus status() const;

  // A consistent snapshot (no push half-applied) of weights, optimizer slots, moving
  // statistics, version and examples seen.
  ShardState ExportState() const;

  // Replaces the state with `state`. Each tensor this shard needs (weights and slots of
  // every parameter slice, every state slice) must be found by name in `state.tensors` in
  // an entry whose [begin, end) covers the slice, so a checkpoint written under another
  // sharding restores too; other entries are ignored. Forgets remembered request ids.
  // On error (NotFound naming the missing tensor and range, InvalidArgument for an entry
  // whose values do not match its range, a negative counter or a non-finite value)
  // nothing changes.
  absl::Status RestoreState(const ShardState& state);

 private:
  struct Slice {
    TensorView view;    // of the layout the slice belongs to
    int64_t begin = 0;  // within the tensor
    int64_t end = 0;
    int64_t offset = 0;  // of element `begin` in the shard's concatenated buffer
    mutable absl::Mutex mu;
    std::vector<float> values ABSL_GUARDED_BY(mu);
    std::unique_ptr<Optimizer> optimizer ABSL_GUARDED_BY(mu);  // null for state slices
  };

  // Past results of one worker's pushes, oldest first.
  struct RememberedRequests {
    std::deque<uint64_t> order;
    absl::flat_hash_map<uint64_t, ShardPushResult> results;
  };

  ParameterShard(const ShardSpec& spec, const ParameterShardConfig& config,
                 const LearningRateSchedule& schedule);

  // InvalidArgument unless the request's sizes, values and example count are acceptable.
  absl::Status ValidatePush(const ShardPushRequest& push) const;
  // InvalidArgument naming the tensor and index of the first non-finite value of
  // `values` (the concatenation of `slices`), or OK.
  static absl::Status CheckFinite(const std::vector<std::unique_ptr<Slice>>& slices,
                                  absl::Span<const float> values, absl::string_view what);
  // Under counters_mu_: the remembered result of (worker, request), or null.
  const ShardPushResult* FindRemembered(int32_t worker_id, uint64_t request_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(counters_mu_);
  void Remember(int32_t worker_id, uint64_t request_id, const ShardPushResult& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(counters_mu_);

  const ShardSpec spec_;
  const ParameterShardConfig config_;
  const LearningRateSchedule schedule_;
  int64_t parameter_count_ = 0;
  int64_t state_count_ = 0;
  // Set once in Create; the Slice objects carry their own locks.
  std::vector<std::unique_ptr<Slice>> parameter_slices_;
  std::vector<std::unique_ptr<Slice>> state_slices_;

  // Held shared by a push from the moment it is counted until it is fully applied, and
  // exclusively by ExportState and RestoreState, so they never see a push half-applied.
  // Acquired before counters_mu_ and any slice lock.
  mutable absl::Mutex apply_mu_;

  mutable absl::Mutex counters_mu_;  // acquired before any slice lock
  int64_t version_ ABSL_GUARDED_BY(counters_mu_) = 0;
  int64_t examples_seen_ ABSL_GUARDED_BY(counters_mu_) = 0;
  int64_t pushes_applied_ ABSL_GUARDED_BY(counters_mu_) = 0;
  int64_t pushes_rejected_stale_ ABSL_GUARDED_BY(counters_mu_) = 0;
  int64_t pushes_invalid_ ABSL_GUARDED_BY(counters_mu_) = 0;
  int64_t pushes_duplicate_ ABSL_GUARDED_BY(counters_mu_) = 0;
  StalenessHistogram staleness_ ABSL_GUARDED_BY(counters_mu_);
  absl::flat_hash_map<int32_t, RememberedRequests> remembered_ ABSL_GUARDED_BY(counters_mu_);
};

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_PARAMETER_SHARD_H_
