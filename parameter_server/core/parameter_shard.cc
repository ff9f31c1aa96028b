#include "parameter_server/core/parameter_shard.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/check.h"
#include "common/gradient_ops.h"
#include "common/status_macros.h"
#include "model/initializer.h"

namespace mobilenet {
namespace {

// The "rms" slot of an RMSprop optimizer (checked).
const float* RmsPropMeanSquare(Optimizer& optimizer) {
  for (const OptimizerSlot& slot : optimizer.slots()) {
    if (slot.name == "rms") return slot.values.data();
  }
  MOBILENET_CHECK(false && "an RMSprop optimizer without its \"rms\" slot");
  return nullptr;
}

bool IsMovingStatistic(TensorRole role) {
  return role == TensorRole::kMovingMean || role == TensorRole::kMovingVariance;
}

std::string DescribeSlice(const TensorSlice& slice) {
  return absl::StrFormat("%s[%d, %d)", slice.tensor, slice.begin, slice.end);
}

// Checks that every slice names a tensor of `layout` of the expected kind, lies within it
// and is not empty, and that no two slices overlap.
absl::Status ValidateSlices(const ParameterLayout& layout, absl::Span<const TensorSlice> slices,
                            bool moving_statistics, absl::string_view what) {
  absl::flat_hash_map<std::string, std::vector<std::pair<int64_t, int64_t>>> ranges;
  for (const TensorSlice& slice : slices) {
    absl::StatusOr<const TensorView*> view = layout.Find(slice.tensor);
    if (!view.ok()) {
      return absl::NotFoundError(
          absl::StrCat(what, " slice ", DescribeSlice(slice), ": ", view.status().message()));
    }
    if (IsMovingStatistic((*view)->role) != moving_statistics) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s slice %s: tensor is a %s, expected %s", what, DescribeSlice(slice),
                          TensorRoleName((*view)->role),
                          moving_statistics ? "moving statistic" : "trainable tensor"));
    }
    if (slice.begin < 0 || slice.begin >= slice.end || slice.end > (*view)->size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s slice %s: expected a non-empty range within [0, %d)", what,
                          DescribeSlice(slice), (*view)->size));
    }
    ranges[slice.tensor].emplace_back(slice.begin, slice.end);
  }
  for (auto& [tensor, spans] : ranges) {
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i) {
      if (spans[i].first < spans[i - 1].second) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s slices of %s overlap: [%d, %d) and [%d, %d)", what, tensor, spans[i - 1].first,
            spans[i - 1].second, spans[i].first, spans[i].second));
      }
    }
  }
  return absl::OkStatus();
}

// Element name of a checkpoint tensor for an optimizer slot.
std::string SlotTensorName(const std::string& tensor, const std::string& slot) {
  return absl::StrCat(tensor, "/", slot);
}

// One moving-average step, shared by the update and its finiteness check.
inline float MovingAverage(float decay, float moving, float batch) {
  return decay * moving + (1.0f - decay) * batch;
}

// One step of the weight average, in double: a convex combination of two finite floats
// lies between them, so rounded back to float it is finite too and needs no check of its
// own before an update is committed.
inline float AverageStep(double decay, float average, float weight) {
  return static_cast<float>(decay * average + (1.0 - decay) * weight);
}

}  // namespace

ShardSpec WholeModelShardSpec(const ParameterLayout& parameters, const ParameterLayout& state) {
  ShardSpec spec;
  for (const TensorView& view : parameters.views()) {
    spec.parameters.push_back({view.name, 0, view.size});
  }
  for (const TensorView& view : state.views()) {
    spec.state.push_back({view.name, 0, view.size});
  }
  return spec;
}

const char* StalenessPolicyName(StalenessPolicy policy) {
  switch (policy) {
    case StalenessPolicy::kApply:
      return "apply";
    case StalenessPolicy::kScaleLearningRate:
      return "scale";
    case StalenessPolicy::kReject:
      return "reject";
    case StalenessPolicy::kDelayCompensation:
      return "dc";
  }
  return "unknown";
}

absl::StatusOr<StalenessPolicy> ParseStalenessPolicy(absl::string_view text) {
  for (StalenessPolicy policy : {StalenessPolicy::kApply, StalenessPolicy::kScaleLearningRate,
                                 StalenessPolicy::kReject, StalenessPolicy::kDelayCompensation}) {
    if (text == StalenessPolicyName(policy)) return policy;
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "unknown staleness policy \"%s\"; expected one of apply, scale, reject, dc", text));
}

const char* WeightsKindName(WeightsKind kind) {
  switch (kind) {
    case WeightsKind::kRaw:
      return "raw";
    case WeightsKind::kAverage:
      return "ema";
  }
  return "unknown";
}

absl::StatusOr<WeightsKind> ParseWeightsKind(absl::string_view text) {
  for (WeightsKind kind : {WeightsKind::kRaw, WeightsKind::kAverage}) {
    if (text == WeightsKindName(kind)) return kind;
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown weights \"%s\"; expected raw or ema", text));
}

double WeightAverageDecay(float decay, int64_t updates_applied) {
  const double n = static_cast<double>(updates_applied);
  return std::min(static_cast<double>(decay), (1.0 + n) / (10.0 + n));
}

absl::StatusOr<ShardUpdate> ShardUpdate::Check(const ParameterShard& shard,
                                               absl::string_view what,
                                               int64_t computed_from_version,
                                               int64_t example_count,
                                               absl::Span<const float> gradients,
                                               absl::Span<const float> batch_stats) {
  return CheckAggregate(shard, what, computed_from_version, 1, example_count, gradients,
                        batch_stats);
}

absl::StatusOr<ShardUpdate> ShardUpdate::CheckAggregate(const ParameterShard& shard,
                                                        absl::string_view what,
                                                        int64_t computed_from_version,
                                                        int64_t pushes, int64_t example_count,
                                                        absl::Span<const float> gradients,
                                                        absl::Span<const float> batch_stats) {
  if (pushes < 1 || pushes > kMaxExamplesPerPush) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: an update of %d pushes, expected 1 to %d", what, pushes, kMaxExamplesPerPush));
  }
  if (static_cast<int64_t>(gradients.size()) != shard.parameter_count()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %d gradient values, expected %d (the shard's %d parameter slices)", what,
        gradients.size(), shard.parameter_count(), shard.spec().parameters.size()));
  }
  if (!batch_stats.empty() && static_cast<int64_t>(batch_stats.size()) != shard.state_count()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: %d batch statistics, expected %d or none",
                                                      what, batch_stats.size(), shard.state_count()));
  }
  if (example_count < 1 || example_count > pushes * kMaxExamplesPerPush) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: example count %d, expected 1 to %d",
                                                      what, example_count,
                                                      pushes * kMaxExamplesPerPush));
  }
  if (computed_from_version < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: computed from version %d, expected >= 0", what, computed_from_version));
  }
  ShardUpdate update;
  update.max_abs_gradient_ = MaxAbs(gradients);
  if (!std::isfinite(update.max_abs_gradient_)) {
    const int64_t bad = FindNonFinite(gradients);
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: gradient for %s is %g; expected finite values", what,
                        shard.DescribeParameter(bad), gradients[bad]));
  }
  RETURN_IF_ERROR(shard.CheckStatistics(batch_stats, absl::StrCat(what, ": batch statistic")));
  update.max_abs_batch_stat_ = MaxAbs(batch_stats);
  update.what_ = std::string(what);
  update.computed_from_version_ = computed_from_version;
  update.example_count_ = example_count;
  update.pushes_ = pushes;
  update.gradients_ = gradients;
  update.batch_stats_ = batch_stats;
  return update;
}

ParameterShard::ParameterShard(const ShardSpec& spec, const ParameterShardConfig& config,
                               const LearningRateSchedule& schedule, int backed_up_workers,
                               int64_t parameter_count)
    : spec_(spec),
      config_(config),
      schedule_(schedule),
      backups_(backed_up_workers, parameter_count) {}

absl::StatusOr<std::unique_ptr<ParameterShard>> ParameterShard::Create(
    const ParameterLayout& parameters, const ParameterLayout& state, const ShardSpec& spec,
    const ParameterShardConfig& config, int num_workers) {
  if (spec.parameters.empty()) {
    return absl::InvalidArgumentError("shard spec holds no parameter slices");
  }
  RETURN_IF_ERROR(ValidateSlices(parameters, spec.parameters, false, "parameter"));
  RETURN_IF_ERROR(ValidateSlices(state, spec.state, true, "state"));
  if (config.max_staleness < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("max_staleness must be >= 0, got %d", config.max_staleness));
  }
  if (!(config.moving_average_decay >= 0.0f && config.moving_average_decay < 1.0f)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "moving_average_decay must be in [0, 1), got %g", config.moving_average_decay));
  }
  if (!(config.weight_ema_decay >= 0.0f && config.weight_ema_decay < 1.0f)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "weight_ema_decay must be in [0, 1) (0: off), got %g", config.weight_ema_decay));
  }
  if (!(std::isfinite(config.dc_lambda) && config.dc_lambda >= 0.0f)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("dc_lambda must be finite and >= 0, got %g", config.dc_lambda));
  }
  if (config.dc_adaptive && config.optimizer.kind != OptimizerKind::kRmsProp) {
    return absl::InvalidArgumentError(
        "dc_adaptive divides lambda by RMSprop's mean square: it needs the rmsprop optimizer");
  }
  if (num_workers < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("a shard for %d workers; expected at least 1", num_workers));
  }
  ASSIGN_OR_RETURN(LearningRateSchedule schedule,
                   LearningRateSchedule::Create(config.learning_rate));

  const bool dc = config.staleness_policy == StalenessPolicy::kDelayCompensation;
  int64_t parameter_count = 0;
  for (const TensorSlice& slice : spec.parameters) parameter_count += slice.size();
  std::unique_ptr<ParameterShard> shard(
      new ParameterShard(spec, config, schedule, dc ? num_workers : 0, parameter_count));
  auto place = [](const ParameterLayout& layout, absl::Span<const TensorSlice> slices,
                  std::vector<Slice>& out) {
    int64_t count = 0;
    for (const TensorSlice& s : slices) {
      out.push_back({**layout.Find(s.tensor), s.begin, s.end, count});
      count += s.size();
    }
    return count;
  };
  shard->parameter_count_ = place(parameters, spec.parameters, shard->parameter_slices_);
  MOBILENET_CHECK(shard->parameter_count_ == parameter_count);
  shard->state_count_ = place(state, spec.state, shard->state_slices_);
  for (const Slice& slice : shard->state_slices_) {
    if (slice.view.role == TensorRole::kMovingVariance) {
      shard->variance_ranges_.emplace_back(slice.offset, slice.offset + (slice.end - slice.begin));
    }
  }

  if (dc) {
    absl::MutexLock update_lock(&shard->update_mu_);
    shard->corrected_.resize(parameter_count);
  }
  absl::MutexLock lock(&shard->data_mu_);
  ASSIGN_OR_RETURN(shard->optimizer_, CreateOptimizer(config.optimizer, shard->parameter_count_));
  shard->weights_.resize(shard->parameter_count_);
  shard->moving_.resize(shard->state_count_);
  for (const Slice& slice : shard->parameter_slices_) {
    InitializeRange(slice.view, config.seed, slice.begin, slice.end,
                    shard->weights_.data() + slice.offset);
  }
  for (const Slice& slice : shard->state_slices_) {
    InitializeRange(slice.view, config.seed, slice.begin, slice.end,
                    shard->moving_.data() + slice.offset);
  }
  if (shard->keeps_weight_average()) shard->average_ = shard->weights_;
  shard->max_abs_weight_ = MaxAbs(shard->weights_);
  shard->max_abs_moving_ = MaxAbs(shard->moving_);
  return shard;
}

std::string ParameterShard::Describe(const std::vector<Slice>& slices, int64_t i) {
  // The slice holding element `i`: the last one starting at or before it.
  auto it = std::upper_bound(slices.begin(), slices.end(), i,
                             [](int64_t index, const Slice& s) { return index < s.offset; });
  if (it == slices.begin()) return absl::StrCat("element ", i);
  const Slice& slice = *(it - 1);
  return absl::StrFormat("%s[%d]", slice.view.name, slice.begin + (i - slice.offset));
}

std::string ParameterShard::DescribeParameter(int64_t i) const {
  return Describe(parameter_slices_, i);
}

std::string ParameterShard::DescribeState(int64_t i) const { return Describe(state_slices_, i); }

absl::Status ParameterShard::CheckStatistics(absl::Span<const float> state,
                                             absl::string_view what) const {
  if (state.empty()) return absl::OkStatus();
  const int64_t bad = FindNonFinite(state);
  if (bad >= 0) {
    return absl::InvalidArgumentError(absl::StrFormat("%s for %s is %g; expected finite values",
                                                      what, DescribeState(bad), state[bad]));
  }
  for (const auto& [begin, end] : variance_ranges_) {
    for (int64_t i = begin; i < end; ++i) {
      if (state[i] < 0.0f) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s for %s is %g; a variance is never negative", what, DescribeState(i), state[i]));
      }
    }
  }
  return absl::OkStatus();
}

int64_t ParameterShard::Pull(absl::Span<float> weights, absl::Span<float> state,
                             WeightsKind kind) const {
  MOBILENET_CHECK(kind == WeightsKind::kRaw || keeps_weight_average());
  absl::ReaderMutexLock lock(&data_mu_);
  return CopyOut(weights, state, kind);
}

int64_t ParameterShard::CopyOut(absl::Span<float> weights, absl::Span<float> state,
                                WeightsKind kind) const {
  MOBILENET_CHECK(static_cast<int64_t>(weights.size()) == parameter_count_);
  MOBILENET_CHECK(state.empty() || static_cast<int64_t>(state.size()) == state_count_);
  const std::vector<float>& source = kind == WeightsKind::kRaw ? weights_ : average_;
  std::copy(source.begin(), source.end(), weights.begin());
  if (!state.empty()) std::copy(moving_.begin(), moving_.end(), state.begin());
  return version_;
}

int64_t ParameterShard::PullForTraining(int worker, absl::Span<float> weights,
                                        absl::Span<float> state) {
  if (config_.staleness_policy != StalenessPolicy::kDelayCompensation) {
    return Pull(weights, state);
  }
  absl::ReaderMutexLock lock(&data_mu_);
  const int64_t version = CopyOut(weights, state, WeightsKind::kRaw);
  absl::MutexLock backups_lock(&backups_mu_);
  backups_.Record(worker, version, weights_);
  return version;
}

absl::StatusOr<AppliedUpdate> ParameterShard::Apply(const ShardUpdate& update, int worker) {
  MOBILENET_CHECK(static_cast<int64_t>(update.gradients_.size()) == parameter_count_);
  absl::MutexLock update_lock(&update_mu_);
  AppliedUpdate applied;
  // What the optimizer applies: the pushed gradients, or their correction in corrected_.
  const float* gradients = update.gradients_.data();
  float max_abs_gradient = update.max_abs_gradient_;
  {
    // Decide with the values as they are; only this thread (holding update_mu_) changes
    // them, so the decision holds when it writes below.
    absl::ReaderMutexLock lock(&data_mu_);
    if (update.computed_from_version_ > version_) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: computed from version %d, but the shard is only at version %d", update.what_,
          update.computed_from_version_, version_));
    }
    applied.staleness = version_ - update.computed_from_version_;
    if (config_.staleness_policy == StalenessPolicy::kReject &&
        applied.staleness > config_.max_staleness) {
      return absl::AbortedError(absl::StrFormat(
          "%s is %d versions stale (computed from %d, shard at %d), more than max_staleness %d; "
          "pull again",
          update.what_, applied.staleness, update.computed_from_version_, version_,
          config_.max_staleness));
    }
    if (version_ > std::numeric_limits<int64_t>::max() - update.pushes_ ||
        examples_seen_ > std::numeric_limits<int64_t>::max() - update.example_count_) {
      return absl::OutOfRangeError(absl::StrFormat(
          "%s: the shard's counters would overflow (version %d, %d examples seen)", update.what_,
          version_, examples_seen_));
    }
    applied.learning_rate = schedule_.LearningRate(examples_seen_);
    if (config_.staleness_policy == StalenessPolicy::kScaleLearningRate) {
      applied.learning_rate /= static_cast<float>(std::max<int64_t>(1, applied.staleness));
    }
    if (config_.staleness_policy == StalenessPolicy::kDelayCompensation) {
      absl::MutexLock backups_lock(&backups_mu_);
      if (const float* backup = backups_.Find(worker, update.computed_from_version_)) {
        max_abs_gradient =
            config_.dc_adaptive
                ? CompensateDelayAdaptive(config_.dc_lambda, update.gradients_, weights_.data(),
                                          backup, RmsPropMeanSquare(*optimizer_),
                                          config_.optimizer.rmsprop_decay,
                                          absl::MakeSpan(corrected_))
                : CompensateDelay(config_.dc_lambda, update.gradients_, weights_.data(), backup,
                                  absl::MakeSpan(corrected_));
        if (!std::isfinite(max_abs_gradient)) {
          const int64_t bad = FindNonFinite(corrected_);
          return absl::InvalidArgumentError(absl::StrFormat(
              "%s: the delay-compensated gradient for %s is %g (gradient %g, weight %g, %g when "
              "pulled at version %d, dc_lambda %g); refused, nothing applied",
              update.what_, DescribeParameter(bad), corrected_[bad], update.gradients_[bad],
              weights_[bad], backup[bad], update.computed_from_version_, config_.dc_lambda));
        }
        gradients = corrected_.data();
        applied.compensated = true;
      }
    }
    // All or nothing: an update the optimizer's bounds cannot clear is computed without
    // storing it first, and refused if any value would not be finite.
    if (!optimizer_->UpdateStaysFinite(applied.learning_rate, max_abs_gradient, max_abs_weight_)) {
      if (std::optional<NonFiniteUpdate> bad =
              optimizer_->FindNonFiniteUpdate(applied.learning_rate, gradients, weights_.data())) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s would make the %s of %s %g (gradient %g%s, learning rate %g); refused, nothing "
            "applied",
            update.what_, bad->what, DescribeParameter(bad->index), bad->value,
            gradients[bad->index], applied.compensated ? " after delay compensation" : "",
            applied.learning_rate));
      }
    }
    const float decay = BatchNormDecay(update.pushes_);
    if (!update.batch_stats_.empty() &&
        !(update.max_abs_batch_stat_ <= kSafeMagnitude && max_abs_moving_ <= kSafeMagnitude)) {
      for (int64_t i = 0; i < state_count_; ++i) {
        const float next = MovingAverage(decay, moving_[i], update.batch_stats_[i]);
        if (!std::isfinite(next)) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "%s would make %s %g (batch statistic %g); refused, nothing applied",
              update.what_, DescribeState(i), next, update.batch_stats_[i]));
        }
      }
    }
  }

  absl::MutexLock lock(&data_mu_);
  max_abs_weight_ =
      optimizer_->Apply(applied.learning_rate, 0, parameter_count_, gradients, weights_.data());
  if (config_.staleness_policy == StalenessPolicy::kDelayCompensation) {
    ++(applied.compensated ? dc_counts_.compensated : dc_counts_.uncompensated);
  }
  if (!update.batch_stats_.empty()) {
    const float decay = BatchNormDecay(update.pushes_);
    const float* batch = update.batch_stats_.data();
    for (int64_t i = 0; i < state_count_; ++i) moving_[i] = MovingAverage(decay, moving_[i], batch[i]);
    max_abs_moving_ = MaxAbs(moving_);
  }
  if (!average_.empty()) {
    const double decay =
        std::pow(WeightAverageDecay(config_.weight_ema_decay, version_), update.pushes_);
    for (int64_t i = 0; i < parameter_count_; ++i) {
      average_[i] = AverageStep(decay, average_[i], weights_[i]);
    }
  }
  version_ += update.pushes_;
  examples_seen_ += update.example_count_;
  applied.version = version_;
  return applied;
}

float ParameterShard::BatchNormDecay(int64_t pushes) const {
  return pushes == 1 ? config_.moving_average_decay
                     : static_cast<float>(std::pow(config_.moving_average_decay, pushes));
}

absl::Status ParameterShard::CountWithoutUpdate(int64_t pushes, int64_t examples) {
  if (pushes < 1 || pushes > kMaxExamplesPerPush || examples < 1 ||
      examples / pushes > kMaxExamplesPerPush) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "counting %d pushes of %d examples: expected 1 to %d pushes of 1 to %d examples each",
        pushes, examples, kMaxExamplesPerPush, kMaxExamplesPerPush));
  }
  absl::MutexLock update_lock(&update_mu_);
  absl::MutexLock lock(&data_mu_);
  if (version_ > std::numeric_limits<int64_t>::max() - pushes ||
      examples_seen_ > std::numeric_limits<int64_t>::max() - examples) {
    return absl::OutOfRangeError(
        absl::StrFormat("the shard's counters would overflow (version %d, %d examples seen)",
                        version_, examples_seen_));
  }
  version_ += pushes;
  examples_seen_ += examples;
  return absl::OkStatus();
}

int64_t ParameterShard::version() const {
  absl::ReaderMutexLock lock(&data_mu_);
  return version_;
}

int64_t ParameterShard::examples_seen() const {
  absl::ReaderMutexLock lock(&data_mu_);
  return examples_seen_;
}

float ParameterShard::learning_rate() const { return schedule_.LearningRate(examples_seen()); }

DelayCompensationCounts ParameterShard::delay_compensation_counts() const {
  absl::ReaderMutexLock lock(&data_mu_);
  return dc_counts_;
}

int64_t ParameterShard::backup_floats() const {
  absl::MutexLock lock(&backups_mu_);
  return backups_.allocated_floats();
}

ShardState ParameterShard::ExportState() const {
  ShardState state;
  absl::ReaderMutexLock lock(&data_mu_);
  state.version = version_;
  state.examples_seen = examples_seen_;
  const std::vector<OptimizerSlot> slots = optimizer_->slots();
  for (const Slice& slice : parameter_slices_) {
    const int64_t size = slice.end - slice.begin;
    state.tensors.push_back({slice.view.name, slice.begin, slice.end,
                             std::vector<float>(weights_.begin() + slice.offset,
                                                weights_.begin() + slice.offset + size)});
    for (const OptimizerSlot& slot : slots) {
      state.tensors.push_back({SlotTensorName(slice.view.name, slot.name), slice.begin, slice.end,
                               std::vector<float>(slot.values.begin() + slice.offset,
                                                  slot.values.begin() + slice.offset + size)});
    }
    if (!average_.empty()) {
      state.tensors.push_back({SlotTensorName(slice.view.name, kWeightAverageSlot), slice.begin,
                               slice.end,
                               std::vector<float>(average_.begin() + slice.offset,
                                                  average_.begin() + slice.offset + size)});
    }
  }
  for (const Slice& slice : state_slices_) {
    const int64_t size = slice.end - slice.begin;
    state.tensors.push_back({slice.view.name, slice.begin, slice.end,
                             std::vector<float>(moving_.begin() + slice.offset,
                                                moving_.begin() + slice.offset + size)});
  }
  return state;
}

absl::Status ParameterShard::RestoreState(const ShardState& state) {
  if (state.version < 0 || state.examples_seen < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("restore: version %d and examples seen %d must be >= 0", state.version,
                        state.examples_seen));
  }
  absl::flat_hash_map<absl::string_view, std::vector<const ShardTensor*>> by_name;
  for (const ShardTensor& tensor : state.tensors) {
    if (tensor.begin < 0 || tensor.end < tensor.begin ||
        static_cast<int64_t>(tensor.values.size()) != tensor.end - tensor.begin) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "restore: tensor %s[%d, %d) holds %d values, expected %d", tensor.name, tensor.begin,
          tensor.end, tensor.values.size(), tensor.end - tensor.begin));
    }
    by_name[tensor.name].push_back(&tensor);
  }
  // The source values for [begin, end) of `name`, each finite and >= lower_bound, or
  // NotFound/InvalidArgument.
  auto find = [&by_name](const std::string& name, int64_t begin, int64_t end,
                         float lower_bound) -> absl::StatusOr<const float*> {
    auto it = by_name.find(name);
    if (it != by_name.end()) {
      for (const ShardTensor* tensor : it->second) {
        if (tensor->begin <= begin && end <= tensor->end) {
          absl::Span<const float> values =
              absl::MakeConstSpan(tensor->values).subspan(begin - tensor->begin, end - begin);
          for (size_t i = 0; i < values.size(); ++i) {
            if (!std::isfinite(values[i]) || values[i] < lower_bound) {
              return absl::InvalidArgumentError(absl::StrFormat(
                  "restore: %s[%d] is %g; expected finite values%s", name, begin + i, values[i],
                  std::isfinite(lower_bound) ? absl::StrFormat(" >= %g", lower_bound) : ""));
            }
          }
          return values.data();
        }
      }
    }
    return absl::NotFoundError(
        absl::StrFormat("restore: no tensor %s covering [%d, %d)", name, begin, end));
  };

  absl::MutexLock update_lock(&update_mu_);
  // Resolve and check every source before changing anything.
  struct Copy {
    float* destination;
    const float* source;
    int64_t size;
  };
  std::vector<Copy> copies;
  absl::MutexLock lock(&data_mu_);
  std::vector<OptimizerSlot> slots = optimizer_->slots();
  for (const Slice& slice : parameter_slices_) {
    const int64_t size = slice.end - slice.begin;
    ASSIGN_OR_RETURN(const float* values,
                     find(slice.view.name, slice.begin, slice.end,
                          -std::numeric_limits<float>::infinity()));
    copies.push_back({weights_.data() + slice.offset, values, size});
    for (OptimizerSlot& slot : slots) {
      ASSIGN_OR_RETURN(const float* slot_values,
                       find(SlotTensorName(slice.view.name, slot.name), slice.begin, slice.end,
                            slot.lower_bound));
      copies.push_back({slot.values.data() + slice.offset, slot_values, size});
    }
    if (!average_.empty()) {
      absl::StatusOr<const float*> average =
          find(SlotTensorName(slice.view.name, kWeightAverageSlot), slice.begin, slice.end,
               -std::numeric_limits<float>::infinity());
      if (!average.ok() && !absl::IsNotFound(average.status())) return average.status();
      copies.push_back({average_.data() + slice.offset, average.ok() ? *average : values, size});
    }
  }
  for (const Slice& slice : state_slices_) {
    const float lower_bound = slice.view.role == TensorRole::kMovingVariance
                                  ? 0.0f
                                  : -std::numeric_limits<float>::infinity();
    ASSIGN_OR_RETURN(const float* values,
                     find(slice.view.name, slice.begin, slice.end, lower_bound));
    copies.push_back({moving_.data() + slice.offset, values, slice.end - slice.begin});
  }
  for (const Copy& copy : copies) std::copy_n(copy.source, copy.size, copy.destination);
  optimizer_->SlotsChanged();
  max_abs_weight_ = MaxAbs(weights_);
  max_abs_moving_ = MaxAbs(moving_);
  version_ = state.version;
  examples_seen_ = state.examples_seen;
  absl::MutexLock backups_lock(&backups_mu_);
  backups_.Clear();
  return absl::OkStatus();
}

}  // namespace mobilenet
