// One parameter server's share of the model, free of any transport: the values of its
// slices of the trainable tensors in one flat buffer, the optimizer's slots in flat
// buffers of the same layout (owned by the Optimizer), the moving statistics of its slices
// of the batch-norm state in another, a version (global step) counter, the number of
// training examples seen and the learning-rate schedule evaluated on it.
//
// An update is all or nothing. Before a push changes anything, the optimizer either
// clears it from bounds it keeps on its state (the common case, free) or computes it
// without storing it; a push that would leave any weight, slot or statistic NaN or
// infinite is refused whole. The update is then written in place under the same lock a
// pull copies under, so a pull returns the values of exactly the version it reports.
//
// Optionally (weight_ema_decay > 0) the shard also keeps an exponential moving average of
// its weights, as the Inception-v3 recipe MobileNet followed did and evaluated: one more
// buffer of the weights' layout, updated in the same write as every applied push.
//
// Under StalenessPolicy::kDelayCompensation (DC-ASGD, weight_backups.h) the shard also
// keeps the weights of each worker's latest training pulls, and corrects a push from
// worker m computed from version v before the optimizer sees it:
// g~ = g + dc_lambda * g (.) g (.) (w_now - w_bak), w_bak being m's backup of version v.
// g~ estimates the gradient at the current weights, so it replaces g everywhere: RMSprop
// (or whichever optimizer is configured) updates its mean square with g~^2 and steps
// with g~, exactly as it would with a fresh gradient; the finiteness check reasons on g~.
// A push whose backup is gone (replaced by newer pulls, never recorded, a restart) is
// applied as it came. Both are counted (delay_compensation_counts).
#ifndef MOBILENET_PARAMETER_SERVER_CORE_PARAMETER_SHARD_H_
#define MOBILENET_PARAMETER_SERVER_CORE_PARAMETER_SHARD_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "common/learning_rate_schedule.h"
#include "common/optimizer.h"
#include "model/parameter_layout.h"
#include "parameter_server/core/weight_backups.h"

namespace mobilenet {

// No push carries more examples than this; counters and checkpoint invariants rely on it
// (a worker refuses a larger --batch_size).
inline constexpr int64_t kMaxExamplesPerPush = int64_t{1} << 20;

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
  kDelayCompensation,  // correct the gradient towards the current weights (Zheng et al., 2017)
};

// "apply", "scale", "reject" or "dc".
const char* StalenessPolicyName(StalenessPolicy policy);
// Parses StalenessPolicyName's spellings; otherwise InvalidArgument listing them.
absl::StatusOr<StalenessPolicy> ParseStalenessPolicy(absl::string_view text);

// Which weights a pull returns: the trained ones, or their exponential moving average.
enum class WeightsKind { kRaw, kAverage };

// "raw" or "ema" (the spellings of mobilenet-ctl --weights).
const char* WeightsKindName(WeightsKind kind);
// Parses WeightsKindName's spellings; otherwise InvalidArgument listing them.
absl::StatusOr<WeightsKind> ParseWeightsKind(absl::string_view text);

// The checkpoint slot name of the averaged weights: "<tensor>/ExponentialMovingAverage",
// as TensorFlow's tf.train.ExponentialMovingAverage names its shadow variables.
inline constexpr char kWeightAverageSlot[] = "ExponentialMovingAverage";

// The decay the weight average uses for the update after `updates_applied` earlier ones:
// min(decay, (1 + n) / (10 + n)), TensorFlow's ExponentialMovingAverage with num_updates.
// Early on the average follows the weights closely instead of holding on to the random
// initialization (with 0.9999 the initial weights would weigh e^-1 after 10000 updates);
// from n = (10 * decay - 1) / (1 - decay) on, the configured decay applies.
double WeightAverageDecay(float decay, int64_t updates_applied);

struct ParameterShardConfig {
  uint64_t seed = 0;  // of model/initializer.h; the same on every shard of a model
  OptimizerConfig optimizer;
  LearningRateScheduleConfig learning_rate;
  StalenessPolicy staleness_policy = StalenessPolicy::kApply;
  int64_t max_staleness = 16;  // kReject only; >= 0
  // kDelayCompensation only: lambda of g + lambda * g (.) g (.) (w_now - w_bak); finite,
  // >= 0 (0 applies gradients as they came). 0.04 is the paper's DC-ASGD-c.
  float dc_lambda = 0.04f;
  // kDelayCompensation with the RMSprop optimizer only: DC-ASGD-a, lambda divided per
  // element by sqrt(ms'), ms' = rho * ms + (1 - rho) * g^2 being RMSprop's mean square
  // with this gradient (CompensateDelayAdaptive), so that the correction is relative to
  // the gradient's own scale; the paper's lambda0 for it is 2.
  bool dc_adaptive = false;
  // moving = decay * moving + (1 - decay) * batch, once per push carrying batch
  // statistics. 0.99 averages over roughly the last 100 pushes, which settles within a
  // few hundred steps; TensorFlow's 0.9997 is meant for runs of ~100k steps and would
  // leave the statistics near their initial values in a short training. In [0, 1).
  float moving_average_decay = 0.99f;
  // 0: keep no weight average. Otherwise, after every applied push,
  // average = d * average + (1 - d) * weights with d = WeightAverageDecay(
  // weight_ema_decay, pushes applied before it); the average starts at the initial
  // weights. In [0, 1).
  float weight_ema_decay = 0.0f;
};

class ParameterShard;

// The content of one push, checked against a shard: the only way to make one is Check,
// so a ShardUpdate in hand has the shard's sizes, finite values and the bounds the
// shard's finiteness reasoning needs. The spans are not owned.
class ShardUpdate {
 public:
  // `gradients`: parameter_count() floats, d loss / d weights of the shard's parameter
  // slices in spec order (weight decay and clipping, if any, already applied by the
  // worker). `batch_stats`: empty (leave the moving statistics alone) or state_count()
  // floats in spec order: each batch norm's batch mean (in its moving_mean slice) and
  // UNBIASED batch variance (in its moving_variance slice; the worker applies M / (M - 1),
  // see worker/batch_statistics.h). InvalidArgument naming the problem: a wrong size,
  // example_count outside [1, kMaxExamplesPerPush], a negative version, a NaN or infinite
  // value or a negative variance (named by tensor and element). `what` starts messages
  // (e.g. "push from worker 3").
  static absl::StatusOr<ShardUpdate> Check(const ParameterShard& shard, absl::string_view what,
                                           int64_t computed_from_version, int64_t example_count,
                                           absl::Span<const float> gradients,
                                           absl::Span<const float> batch_stats);
  // A synchronous step's update: the average of `pushes` (>= 1) workers' gradients (and
  // of their batch statistics, or empty), `example_count` their examples together (in
  // [1, pushes * kMaxExamplesPerPush]). Applied, it counts as that many pushes: the
  // version and examples seen advance by all of them, and the moving statistics and the
  // weight average decay as they would over `pushes` pushes (decay^pushes), so that both
  // follow the examples seen as in asynchronous training. Otherwise as Check.
  static absl::StatusOr<ShardUpdate> CheckAggregate(const ParameterShard& shard,
                                                    absl::string_view what,
                                                    int64_t computed_from_version, int64_t pushes,
                                                    int64_t example_count,
                                                    absl::Span<const float> gradients,
                                                    absl::Span<const float> batch_stats);

  int64_t computed_from_version() const { return computed_from_version_; }
  int64_t example_count() const { return example_count_; }
  int64_t pushes() const { return pushes_; }
  absl::Span<const float> gradients() const { return gradients_; }
  absl::Span<const float> batch_stats() const { return batch_stats_; }

 private:
  friend class ParameterShard;
  ShardUpdate() = default;

  std::string what_;
  int64_t computed_from_version_ = 0;
  int64_t example_count_ = 0;
  int64_t pushes_ = 1;
  absl::Span<const float> gradients_;
  absl::Span<const float> batch_stats_;
  float max_abs_gradient_ = 0.0f;
  float max_abs_batch_stat_ = 0.0f;
};

struct AppliedUpdate {
  int64_t version = 0;         // the shard's version once this push is applied
  int64_t staleness = 0;       // version before the push - computed_from_version
  float learning_rate = 0.0f;  // the rate the update used (after the staleness policy)
  // kDelayCompensation: the gradient was corrected with the pushing worker's backup.
  bool compensated = false;
};

// Applied pushes under kDelayCompensation, by whether a backup matched. This run's only
// (not checkpointed).
struct DelayCompensationCounts {
  int64_t compensated = 0;
  int64_t uncompensated = 0;
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

// Thread-safe. Updates are serialized; pulls, status and exports proceed alongside the
// part of an update that only reads (its finiteness check) and wait for its write.
class ParameterShard {
 public:
  // A shard holding `spec`'s slices, initialized with model/initializer.h from
  // config.seed (each slice equals the same range of a whole-model initialization), with
  // fresh optimizer slots, version 0 and no examples seen. InvalidArgument or NotFound
  // naming the problem for: an unknown tensor, a slice out of its tensor's range or
  // empty, overlapping slices, a moving statistic among the parameters or a trainable
  // tensor among the state, no parameter slices, or an invalid config value (named).
  // Under kDelayCompensation the training pulls of workers [0, num_workers) are backed up
  // (>= 1; WeightBackups::kPullsPerWorker * parameter_count() floats each, allocated on a
  // worker's first training pull).
  static absl::StatusOr<std::unique_ptr<ParameterShard>> Create(const ParameterLayout& parameters,
                                                                const ParameterLayout& state,
                                                                const ShardSpec& spec,
                                                                const ParameterShardConfig& config,
                                                                int num_workers = 1);

  ParameterShard(const ParameterShard&) = delete;
  ParameterShard& operator=(const ParameterShard&) = delete;

  const ShardSpec& spec() const { return spec_; }
  const ParameterShardConfig& config() const { return config_; }
  // Floats in the concatenation of the parameter (state) slices.
  int64_t parameter_count() const { return parameter_count_; }
  int64_t state_count() const { return state_count_; }
  // Whether the shard keeps a weight average (config().weight_ema_decay > 0).
  bool keeps_weight_average() const { return config_.weight_ema_decay > 0.0f; }

  // Copies the current weights (or, for kAverage, their average) into `weights`
  // (parameter_count() floats) and moving statistics into `state` (state_count() floats,
  // or empty to skip them); returns the version of exactly these values. A span of
  // another size, or kAverage from a shard that keeps no average, is a programming error
  // (checked).
  int64_t Pull(absl::Span<float> weights, absl::Span<float> state,
               WeightsKind kind = WeightsKind::kRaw) const;
  // Pull(weights, state) by worker `worker`, which will push gradients computed from these
  // weights: under kDelayCompensation they are also kept as its backup of the version
  // returned (a worker outside [0, num_workers) gets none).
  int64_t PullForTraining(int worker, absl::Span<float> weights, absl::Span<float> state);

  // Applies one push, or nothing: the optimizer with the schedule's rate at the examples
  // seen before this push (adjusted by the staleness policy), the moving averages when
  // the update carries batch statistics, the weight average when kept, then version + 1
  // and examples seen + example_count. `worker` computed the update (-1: unknown); under
  // kDelayCompensation its backup of update.computed_from_version(), if any, corrects the
  // gradients first. Errors change nothing:
  //   InvalidArgument: computed from a version newer than the shard's (from the future),
  //     a corrected gradient that overflows (named by tensor and element), or an update
  //     that would leave a weight, slot or statistic NaN or infinite (named by tensor,
  //     element and what it would become);
  //   Aborted: kReject and staleness > max_staleness (the message names both); the
  //     worker should pull again;
  //   OutOfRange: the version or examples-seen counter would overflow.
  absl::StatusOr<AppliedUpdate> Apply(const ShardUpdate& update, int worker = -1);

  // Counts `pushes` (>= 1) pushes of `examples` (in [1, pushes * kMaxExamplesPerPush])
  // in the version and examples seen without changing any value: a synchronous step
  // whose gradients this shard lost to a restart, so that its counters keep following
  // the step leader's. OutOfRange when a counter would overflow; InvalidArgument for
  // counts out of range.
  absl::Status CountWithoutUpdate(int64_t pushes, int64_t examples);

  int64_t version() const;
  int64_t examples_seen() const;
  // The schedule's learning rate at examples_seen().
  const LearningRateSchedule& learning_rate_schedule() const { return schedule_; }
  float learning_rate() const;
  // Pushes applied with and without a correction (zeros unless kDelayCompensation).
  DelayCompensationCounts delay_compensation_counts() const;
  // Floats allocated for workers' backups so far (0 unless kDelayCompensation).
  int64_t backup_floats() const;

  // A consistent snapshot (no update half-applied) of weights, optimizer slots, the weight
  // average when kept ("<tensor>/ExponentialMovingAverage"), moving statistics, version
  // and examples seen.
  ShardState ExportState() const;

  // Replaces the state with `state`. Each tensor this shard needs (weights and slots of
  // every parameter slice, every state slice) must be found by name in `state.tensors` in
  // an entry whose [begin, end) covers the slice, so a checkpoint written under another
  // sharding restores too; other entries are ignored (so are averages, by a shard keeping
  // none). The weight average is optional: a slice whose average `state` lacks (a
  // checkpoint written with the average off) starts it from the restored weights. On error
  // (NotFound naming the missing tensor and range, InvalidArgument for an entry whose values do not
  // match its range, a negative counter, a non-finite value or a value below its slot's or
  // statistic's lower bound, such as a negative mean square or variance) nothing changes.
  // Forgets the workers' backups (the versions they name may now hold other weights).
  absl::Status RestoreState(const ShardState& state);

  // "<tensor>[<element>]" of index `i` of the concatenated parameter (state) buffer.
  std::string DescribeParameter(int64_t i) const;
  std::string DescribeState(int64_t i) const;

  // InvalidArgument unless every value of `state` (empty, or state_count() floats in spec
  // order) is finite and no moving variance is negative; `what` starts the message.
  absl::Status CheckStatistics(absl::Span<const float> state, absl::string_view what) const;

 private:
  struct Slice {
    TensorView view;     // of the layout the slice belongs to
    int64_t begin = 0;   // within the tensor
    int64_t end = 0;
    int64_t offset = 0;  // of element `begin` in the shard's concatenated buffer
  };

  ParameterShard(const ShardSpec& spec, const ParameterShardConfig& config,
                 const LearningRateSchedule& schedule, int backed_up_workers,
                 int64_t parameter_count);

  static std::string Describe(const std::vector<Slice>& slices, int64_t i);

  // The moving statistics' decay over `pushes` pushes: moving_average_decay^pushes.
  float BatchNormDecay(int64_t pushes) const;

  // Pull's copy, under data_mu_: the weights (or their average) and, unless `state` is
  // empty, the moving statistics; returns their version. Sizes as Pull's (checked).
  int64_t CopyOut(absl::Span<float> weights, absl::Span<float> state, WeightsKind kind) const
      ABSL_SHARED_LOCKS_REQUIRED(data_mu_);

  const ShardSpec spec_;
  const ParameterShardConfig config_;
  const LearningRateSchedule schedule_;
  int64_t parameter_count_ = 0;
  int64_t state_count_ = 0;
  // Set once in Create: where each slice lives in the flat buffers, and which state
  // elements are variances (never negative).
  std::vector<Slice> parameter_slices_;
  std::vector<Slice> state_slices_;
  std::vector<std::pair<int64_t, int64_t>> variance_ranges_;  // [begin, end) of the state

  // Serializes Apply and RestoreState (one writer at a time); acquired before data_mu_.
  absl::Mutex update_mu_;
  // kDelayCompensation: Apply's corrected gradient, parameter_count_ floats (else empty).
  std::vector<float> corrected_ ABSL_GUARDED_BY(update_mu_);
  // Shared by readers (pulls, exports, an update's check), exclusive for writing.
  mutable absl::Mutex data_mu_;
  std::vector<float> weights_ ABSL_GUARDED_BY(data_mu_);
  std::unique_ptr<Optimizer> optimizer_ ABSL_GUARDED_BY(data_mu_);  // owns the slots
  std::vector<float> moving_ ABSL_GUARDED_BY(data_mu_);
  // The weight average, parameter_count_ floats; empty when the shard keeps none.
  std::vector<float> average_ ABSL_GUARDED_BY(data_mu_);
  int64_t version_ ABSL_GUARDED_BY(data_mu_) = 0;
  int64_t examples_seen_ ABSL_GUARDED_BY(data_mu_) = 0;
  // Upper bounds of |weight| and |moving statistic|, for the finiteness reasoning.
  float max_abs_weight_ ABSL_GUARDED_BY(data_mu_) = 0.0f;
  float max_abs_moving_ ABSL_GUARDED_BY(data_mu_) = 0.0f;
  DelayCompensationCounts dc_counts_ ABSL_GUARDED_BY(data_mu_);

  // The workers' backups (kDelayCompensation; no workers otherwise). A training pull
  // records one while it holds data_mu_ as a reader, and Apply reads one while it does,
  // so a backup tagged with a version always holds that version's weights. Acquired
  // after data_mu_.
  mutable absl::Mutex backups_mu_;
  WeightBackups backups_ ABSL_GUARDED_BY(backups_mu_);
};

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CORE_PARAMETER_SHARD_H_
