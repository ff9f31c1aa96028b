#include "worker/in_process_parameter_client.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/gradient_ops.h"
#include "common/status_macros.h"

namespace mobilenet {
namespace {

// The shard's slices of `layout` as flat segments, in spec order.
absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> FlatRanges(
    const ParameterLayout& layout, const std::vector<TensorSlice>& slices) {
  std::vector<std::pair<int64_t, int64_t>> ranges;  // (flat begin, size)
  for (const TensorSlice& slice : slices) {
    ASSIGN_OR_RETURN(const TensorView* view, layout.Find(slice.tensor));
    if (slice.begin < 0 || slice.end > view->size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("shard slice %s[%d, %d) lies outside the tensor's %d elements",
                          slice.tensor, slice.begin, slice.end, view->size));
    }
    ranges.emplace_back(view->offset + slice.begin, slice.size());
  }
  return ranges;
}

// InvalidArgument unless the (begin, size) ranges tile [0, total) exactly.
absl::Status CheckExactCover(std::vector<std::pair<int64_t, int64_t>> ranges, int64_t total,
                             const char* what) {
  std::sort(ranges.begin(), ranges.end());
  int64_t next = 0;
  for (const auto& [begin, size] : ranges) {
    if (begin < next) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s elements [%d, %d) are held by more than one shard slice", what, begin,
                          std::min(next, begin + size)));
    }
    if (begin > next) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s elements [%d, %d) are held by no shard", what, next, begin));
    }
    next = begin + size;
  }
  if (next != total) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s elements [%d, %d) are held by no shard", what, next, total));
  }
  return absl::OkStatus();
}

}  // namespace

InProcessParameterClient::InProcessParameterClient(const ParameterLayout& parameters,
                                                   const ParameterLayout& state,
                                                   std::vector<ShardRouting> shards)
    : parameters_(parameters), state_(state), shards_(std::move(shards)) {}

absl::StatusOr<std::unique_ptr<InProcessParameterClient>> InProcessParameterClient::Create(
    const ParameterLayout& parameters, const ParameterLayout& state,
    std::vector<ParameterShard*> shards) {
  if (shards.empty()) return absl::InvalidArgumentError("no parameter shards given");
  std::vector<ShardRouting> routings;
  std::vector<std::pair<int64_t, int64_t>> all_parameters, all_state;
  auto route = [](const std::vector<std::pair<int64_t, int64_t>>& ranges) {
    Routing routing;
    routing.contiguous = true;
    for (const auto& [flat_offset, size] : ranges) {
      if (!routing.segments.empty() &&
          flat_offset != routing.segments[0].flat_offset + routing.count) {
        routing.contiguous = false;
      }
      routing.segments.push_back({flat_offset, routing.count, size});
      routing.count += size;
    }
    return routing;
  };
  for (ParameterShard* shard : shards) {
    ASSIGN_OR_RETURN(auto parameter_ranges, FlatRanges(parameters, shard->spec().parameters));
    ASSIGN_OR_RETURN(auto state_ranges, FlatRanges(state, shard->spec().state));
    all_parameters.insert(all_parameters.end(), parameter_ranges.begin(), parameter_ranges.end());
    all_state.insert(all_state.end(), state_ranges.begin(), state_ranges.end());
    routings.push_back({shard, route(parameter_ranges), route(state_ranges)});
  }
  RETURN_IF_ERROR(CheckExactCover(std::move(all_parameters), parameters.total_size(), "parameter"));
  RETURN_IF_ERROR(CheckExactCover(std::move(all_state), state.total_size(), "state"));
  return std::unique_ptr<InProcessParameterClient>(
      new InProcessParameterClient(parameters, state, std::move(routings)));
}

absl::Span<const float> InProcessParameterClient::Gather(const Routing& routing,
                                                         absl::Span<const float> full,
                                                         std::vector<float>& scratch) {
  if (routing.count == 0) return {};
  if (routing.contiguous) return full.subspan(routing.segments[0].flat_offset, routing.count);
  scratch.resize(routing.count);
  for (const Segment& segment : routing.segments) {
    std::copy_n(full.begin() + segment.flat_offset, segment.size,
                scratch.begin() + segment.shard_offset);
  }
  return scratch;
}

absl::Span<float> InProcessParameterClient::PullTarget(const Routing& routing,
                                                       absl::Span<float> full,
                                                       std::vector<float>& scratch) {
  if (routing.count == 0) return {};
  if (routing.contiguous) return full.subspan(routing.segments[0].flat_offset, routing.count);
  scratch.resize(routing.count);
  return absl::MakeSpan(scratch);
}

void InProcessParameterClient::Scatter(const Routing& routing, const std::vector<float>& scratch,
                                       absl::Span<float> full) {
  if (routing.contiguous) return;
  for (const Segment& segment : routing.segments) {
    std::copy_n(scratch.begin() + segment.shard_offset, segment.size,
                full.begin() + segment.flat_offset);
  }
}

absl::StatusOr<ModelVersion> InProcessParameterClient::Pull(absl::Span<float> parameters,
                                                            absl::Span<float> state) {
  if (static_cast<int64_t>(parameters.size()) != parameters_.total_size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("pull: parameter buffer holds %d floats, expected %d", parameters.size(),
                        parameters_.total_size()));
  }
  if (!state.empty() && static_cast<int64_t>(state.size()) != state_.total_size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("pull: state buffer holds %d floats, expected %d (or none)", state.size(),
                        state_.total_size()));
  }
  ModelVersion version;
  std::vector<float> parameter_scratch, state_scratch;
  for (size_t i = 0; i < shards_.size(); ++i) {
    const ShardRouting& shard = shards_[i];
    const bool want_state = !state.empty() && shard.state.count > 0;
    absl::StatusOr<int64_t> shard_version = shard.shard->Pull(
        PullTarget(shard.parameters, parameters, parameter_scratch),
        want_state ? PullTarget(shard.state, state, state_scratch) : absl::Span<float>());
    if (!shard_version.ok()) {
      return absl::Status(shard_version.status().code(),
                          absl::StrCat("shard ", i, ": ", shard_version.status().message()));
    }
    version.shard_versions.push_back(*shard_version);
    Scatter(shard.parameters, parameter_scratch, parameters);
    if (want_state) Scatter(shard.state, state_scratch, state);
  }
  return version;
}

absl::StatusOr<PushResult> InProcessParameterClient::Push(const PushRequest& request) {
  if (static_cast<int64_t>(request.gradients.size()) != parameters_.total_size()) {
    return absl::InvalidArgumentError(absl::StrFormat("push: %d gradient values, expected %d",
                                                      request.gradients.size(),
                                                      parameters_.total_size()));
  }
  if (!request.batch_stats.empty() &&
      static_cast<int64_t>(request.batch_stats.size()) != state_.total_size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("push: %d batch statistics, expected %d or none",
                        request.batch_stats.size(), state_.total_size()));
  }
  if (request.computed_from.shard_versions.size() != shards_.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("push: computed from %d shard versions, expected %d (one per shard)",
                        request.computed_from.shard_versions.size(), shards_.size()));
  }
  // Checked here as a whole so that no shard applies its part of a malformed push.
  RETURN_IF_ERROR(CheckFinite(parameters_, request.gradients, "gradient"));
  RETURN_IF_ERROR(CheckFinite(state_, request.batch_stats, "batch statistic"));
  PushResult result;
  absl::Status first_error;
  std::vector<float> gradient_scratch, stats_scratch;
  for (size_t i = 0; i < shards_.size(); ++i) {
    const ShardRouting& shard = shards_[i];
    ShardPushRequest push;
    push.worker_id = request.worker_id;
    push.request_id = request.request_id;
    push.computed_from_version = request.computed_from.shard_versions[i];
    push.example_count = request.example_count;
    push.gradients = Gather(shard.parameters, request.gradients, gradient_scratch);
    if (!request.batch_stats.empty()) {
      push.batch_stats = Gather(shard.state, request.batch_stats, stats_scratch);
    }
    absl::StatusOr<ShardPushResult> shard_result = shard.shard->ApplyGradients(push);
    if (!shard_result.ok()) {
      if (first_error.ok()) {
        first_error =
            absl::Status(shard_result.status().code(),
                         absl::StrCat("shard ", i, ": ", shard_result.status().message()));
      }
      result.version.shard_versions.push_back(-1);
      continue;
    }
    if (i == 0) result.learning_rate = shard_result->learning_rate;
    result.max_staleness = std::max(result.max_staleness, shard_result->staleness);
    result.version.shard_versions.push_back(shard_result->version);
  }
  if (!first_error.ok()) return first_error;
  return result;
}

absl::Status InProcessParameterClient::CheckFinite(const ParameterLayout& layout,
                                                   absl::Span<const float> values,
                                                   const char* what) {
  const int64_t bad = FindNonFinite(values);
  if (bad < 0) return absl::OkStatus();
  for (const TensorView& view : layout.views()) {
    if (bad < view.offset + view.size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("push: %s for %s[%d] is %g; expected finite values", what, view.name,
                          bad - view.offset, values[bad]));
    }
  }
  return absl::InvalidArgumentError(absl::StrFormat("push: %s %d is not finite", what, bad));
}

absl::StatusOr<ParameterServerStatus> InProcessParameterClient::GetStatus() {
  ParameterServerStatus status;
  for (const ShardRouting& shard : shards_) status.shards.push_back(shard.shard->status());
  return status;
}

}  // namespace mobilenet
