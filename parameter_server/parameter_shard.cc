#include "parameter_server/parameter_shard.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/gradient_ops.h"
#include "common/status_macros.h"
#include "model/initializer.h"

namespace mobilenet {
namespace {

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
  }
  return "unknown";
}

absl::StatusOr<StalenessPolicy> ParseStalenessPolicy(absl::string_view text) {
  for (StalenessPolicy policy :
       {StalenessPolicy::kApply, StalenessPolicy::kScaleLearningRate, StalenessPolicy::kReject}) {
    if (text == StalenessPolicyName(policy)) return policy;
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "unknown staleness policy \"%s\"; expected one of apply, scale, reject", text));
}

ParameterShard::ParameterShard(const ShardSpec& spec, const ParameterShardConfig& config,
                               const LearningRateSchedule& schedule)
    : spec_(spec), config_(config), schedule_(schedule) {}

absl::StatusOr<std::unique_ptr<ParameterShard>> ParameterShard::Create(
    const ParameterLayout& parameters, const ParameterLayout& state, const ShardSpec& spec,
    const ParameterShardConfig& config) {
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
  if (config.remembered_requests_per_worker < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("remembered_requests_per_worker must be >= 1, got %d",
                        config.remembered_requests_per_worker));
  }
  ASSIGN_OR_RETURN(LearningRateSchedule schedule,
                   LearningRateSchedule::Create(config.learning_rate));
  // Validates the optimizer config before any allocation.
  RETURN_IF_ERROR(CreateOptimizer(config.optimizer, 0).status());

  std::unique_ptr<ParameterShard> shard(new ParameterShard(spec, config, schedule));
  auto add_slices = [&config](const ParameterLayout& layout, absl::Span<const TensorSlice> slices,
                              bool trainable, std::vector<std::unique_ptr<Slice>>& out,
                              int64_t& count) -> absl::Status {
    for (const TensorSlice& s : slices) {
      auto slice = std::make_unique<Slice>();
      slice->view = **layout.Find(s.tensor);
      slice->begin = s.begin;
      slice->end = s.end;
      slice->offset = count;
      absl::MutexLock lock(&slice->mu);
      slice->values.resize(s.size());
      InitializeRange(slice->view, config.seed, s.begin, s.end, slice->values.data());
      if (trainable) {
        ASSIGN_OR_RETURN(slice->optimizer, CreateOptimizer(config.optimizer, s.size()));
      }
      count += s.size();
      out.push_back(std::move(slice));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(add_slices(parameters, spec.parameters, true, shard->parameter_slices_,
                             shard->parameter_count_));
  RETURN_IF_ERROR(add_slices(state, spec.state, false, shard->state_slices_, shard->state_count_));
  return shard;
}

absl::StatusOr<int64_t> ParameterShard::Pull(absl::Span<float> weights,
                                             absl::Span<float> state) const {
  if (static_cast<int64_t>(weights.size()) != parameter_count_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "pull: weights buffer holds %d floats, expected %d", weights.size(), parameter_count_));
  }
  if (!state.empty() && static_cast<int64_t>(state.size()) != state_count_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "pull: state buffer holds %d floats, expected %d (or none)", state.size(), state_count_));
  }
  int64_t version;
  {
    absl::MutexLock lock(&counters_mu_);
    version = version_;
  }
  for (const auto& slice : parameter_slices_) {
    absl::MutexLock lock(&slice->mu);
    std::copy(slice->values.begin(), slice->values.end(), weights.begin() + slice->offset);
  }
  if (!state.empty()) {
    for (const auto& slice : state_slices_) {
      absl::MutexLock lock(&slice->mu);
      std::copy(slice->values.begin(), slice->values.end(), state.begin() + slice->offset);
    }
  }
  return version;
}

absl::Status ParameterShard::CheckFinite(const std::vector<std::unique_ptr<Slice>>& slices,
                                         absl::Span<const float> values, absl::string_view what) {
  const int64_t bad = FindNonFinite(values);
  if (bad < 0) return absl::OkStatus();
  // The slice holding element `bad`: the last one starting at or before it.
  auto it = std::upper_bound(slices.begin(), slices.end(), bad,
                             [](int64_t i, const auto& s) { return i < s->offset; });
  const Slice& slice = **(it - 1);
  return absl::InvalidArgumentError(
      absl::StrFormat("%s for %s[%d] is %g; expected finite values", what, slice.view.name,
                      slice.begin + (bad - slice.offset), values[bad]));
}

absl::Status ParameterShard::ValidatePush(const ShardPushRequest& push) const {
  if (static_cast<int64_t>(push.gradients.size()) != parameter_count_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "push from worker %d: %d gradient values, expected %d (the shard's %d parameter "
        "slices)",
        push.worker_id, push.gradients.size(), parameter_count_, parameter_slices_.size()));
  }
  if (!push.batch_stats.empty() && static_cast<int64_t>(push.batch_stats.size()) != state_count_) {
    return absl::InvalidArgumentError(
        absl::StrFormat("push from worker %d: %d batch statistics, expected %d or none",
                        push.worker_id, push.batch_stats.size(), state_count_));
  }
  if (push.example_count < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("push from worker %d: example count %d, expected >= 1", push.worker_id,
                        push.example_count));
  }
  if (push.computed_from_version < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("push from worker %d: computed from version %d, expected >= 0",
                        push.worker_id, push.computed_from_version));
  }
  RETURN_IF_ERROR(CheckFinite(parameter_slices_, push.gradients,
                              absl::StrCat("push from worker ", push.worker_id, ": gradient")));
  return CheckFinite(state_slices_, push.batch_stats,
                     absl::StrCat("push from worker ", push.worker_id, ": batch statistic"));
}

const ShardPushResult* ParameterShard::FindRemembered(int32_t worker_id,
                                                      uint64_t request_id) const {
  auto worker = remembered_.find(worker_id);
  if (worker == remembered_.end()) return nullptr;
  auto it = worker->second.results.find(request_id);
  return it == worker->second.results.end() ? nullptr : &it->second;
}

void ParameterShard::Remember(int32_t worker_id, uint64_t request_id,
                              const ShardPushResult& result) {
  RememberedRequests& worker = remembered_[worker_id];
  worker.order.push_back(request_id);
  worker.results[request_id] = result;
  if (static_cast<int>(worker.order.size()) > config_.remembered_requests_per_worker) {
    worker.results.erase(worker.order.front());
    worker.order.pop_front();
  }
}

absl::StatusOr<ShardPushResult> ParameterShard::ApplyGradients(const ShardPushRequest& push) {
  absl::Status valid = ValidatePush(push);
  if (!valid.ok()) {
    absl::MutexLock lock(&counters_mu_);
    ++pushes_invalid_;
    return valid;
  }

  absl::ReaderMutexLock apply_lock(&apply_mu_);
  ShardPushResult result;
  {
    absl::MutexLock lock(&counters_mu_);
    if (const ShardPushResult* previous = FindRemembered(push.worker_id, push.request_id)) {
      ++pushes_duplicate_;
      ShardPushResult repeated = *previous;
      repeated.duplicate = true;
      return repeated;
    }
    if (push.computed_from_version > version_) {
      ++pushes_invalid_;
      return absl::InvalidArgumentError(absl::StrFormat(
          "push from worker %d: computed from version %d, but the shard is only at version "
          "%d",
          push.worker_id, push.computed_from_version, version_));
    }
    const int64_t staleness = version_ - push.computed_from_version;
    if (config_.staleness_policy == StalenessPolicy::kReject && staleness > config_.max_staleness) {
      ++pushes_rejected_stale_;
      return absl::AbortedError(absl::StrFormat(
          "push from worker %d is %d versions stale (computed from %d, shard at %d), more "
          "than max_staleness %d; pull again",
          push.worker_id, staleness, push.computed_from_version, version_, config_.max_staleness));
    }
    float learning_rate = schedule_.LearningRate(examples_seen_);
    if (config_.staleness_policy == StalenessPolicy::kScaleLearningRate) {
      learning_rate /= static_cast<float>(std::max<int64_t>(1, staleness));
    }
    ++version_;
    examples_seen_ += push.example_count;
    ++pushes_applied_;
    staleness_.Add(staleness);
    result.version = version_;
    result.staleness = staleness;
    result.learning_rate = learning_rate;
    Remember(push.worker_id, push.request_id, result);
  }

  for (const auto& slice : parameter_slices_) {
    absl::MutexLock lock(&slice->mu);
    slice->optimizer->Apply(result.learning_rate, 0, slice->end - slice->begin,
                            push.gradients.data() + slice->offset, slice->values.data());
  }
  if (!push.batch_stats.empty()) {
    const float decay = config_.moving_average_decay;
    for (const auto& slice : state_slices_) {
      absl::MutexLock lock(&slice->mu);
      const float* batch = push.batch_stats.data() + slice->offset;
      float* moving = slice->values.data();
      for (size_t i = 0; i < slice->values.size(); ++i) {
        moving[i] = decay * moving[i] + (1.0f - decay) * batch[i];
      }
    }
  }
  return result;
}

ShardStatus ParameterShard::status() const {
  ShardStatus status;
  absl::MutexLock lock(&counters_mu_);
  status.version = version_;
  status.examples_seen = examples_seen_;
  status.learning_rate = schedule_.LearningRate(examples_seen_);
  status.pushes_applied = pushes_applied_;
  status.pushes_rejected_stale = pushes_rejected_stale_;
  status.pushes_invalid = pushes_invalid_;
  status.pushes_duplicate = pushes_duplicate_;
  status.staleness_p50 = staleness_.Percentile(0.5);
  status.staleness_p90 = staleness_.Percentile(0.9);
  status.staleness_max = staleness_.max();
  status.staleness_mean = staleness_.mean();
  status.parameter_count = parameter_count_;
  status.state_count = state_count_;
  return status;
}

ShardState ParameterShard::ExportState() const {
  absl::MutexLock apply_lock(&apply_mu_);
  ShardState state;
  {
    absl::MutexLock lock(&counters_mu_);
    state.version = version_;
    state.examples_seen = examples_seen_;
  }
  for (const auto& slice : parameter_slices_) {
    absl::MutexLock lock(&slice->mu);
    state.tensors.push_back({slice->view.name, slice->begin, slice->end, slice->values});
    for (const OptimizerSlot& slot : slice->optimizer->slots()) {
      state.tensors.push_back({SlotTensorName(slice->view.name, slot.name), slice->begin,
                               slice->end,
                               std::vector<float>(slot.values.begin(), slot.values.end())});
    }
  }
  for (const auto& slice : state_slices_) {
    absl::MutexLock lock(&slice->mu);
    state.tensors.push_back({slice->view.name, slice->begin, slice->end, slice->values});
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
  // The source values for [begin, end) of `name`, or NotFound/InvalidArgument.
  auto find = [&by_name](const std::string& name, int64_t begin,
                         int64_t end) -> absl::StatusOr<const float*> {
    auto it = by_name.find(name);
    if (it != by_name.end()) {
      for (const ShardTensor* tensor : it->second) {
        if (tensor->begin <= begin && end <= tensor->end) {
          absl::Span<const float> values =
              absl::MakeConstSpan(tensor->values).subspan(begin - tensor->begin, end - begin);
          const int64_t bad = FindNonFinite(values);
          if (bad >= 0) {
            return absl::InvalidArgumentError(absl::StrFormat(
                "restore: %s[%d] is %g; expected finite values", name, begin + bad, values[bad]));
          }
          return values.data();
        }
      }
    }
    return absl::NotFoundError(
        absl::StrFormat("restore: no tensor %s covering [%d, %d)", name, begin, end));
  };

  // Resolve every source before changing anything.
  struct Copy {
    Slice* slice;
    int slot;  // -1 for the values
    const float* source;
  };
  std::vector<Copy> copies;
  absl::MutexLock apply_lock(&apply_mu_);
  for (const auto& slice : parameter_slices_) {
    absl::MutexLock lock(&slice->mu);
    ASSIGN_OR_RETURN(const float* values, find(slice->view.name, slice->begin, slice->end));
    copies.push_back({slice.get(), -1, values});
    std::vector<OptimizerSlot> slots = slice->optimizer->slots();
    for (size_t k = 0; k < slots.size(); ++k) {
      ASSIGN_OR_RETURN(
          const float* slot_values,
          find(SlotTensorName(slice->view.name, slots[k].name), slice->begin, slice->end));
      copies.push_back({slice.get(), static_cast<int>(k), slot_values});
    }
  }
  for (const auto& slice : state_slices_) {
    ASSIGN_OR_RETURN(const float* values, find(slice->view.name, slice->begin, slice->end));
    copies.push_back({slice.get(), -1, values});
  }

  absl::MutexLock lock(&counters_mu_);
  for (const Copy& copy : copies) {
    Slice& slice = *copy.slice;
    absl::MutexLock slice_lock(&slice.mu);
    float* destination =
        copy.slot < 0 ? slice.values.data() : slice.optimizer->slots()[copy.slot].values.data();
    std::copy(copy.source, copy.source + (slice.end - slice.begin), destination);
  }
  version_ = state.version;
  examples_seen_ = state.examples_seen;
  remembered_.clear();
  return absl::OkStatus();
}

}  // namespace mobilenet
