#include "worker/shard_routing.h"

#include <algorithm>

#include "common/check.h"

namespace mobilenet {
namespace {

Routing Route(const ParameterLayout& layout, const std::vector<TensorSlice>& slices) {
  Routing routing;
  for (const TensorSlice& slice : slices) {
    absl::StatusOr<const TensorView*> view = layout.Find(slice.tensor);
    MOBILENET_CHECK(view.ok());  // the plan was made from this layout
    const int64_t flat_offset = (*view)->offset + slice.begin;
    if (!routing.segments.empty() &&
        routing.segments.back().flat_offset + routing.segments.back().size == flat_offset) {
      routing.segments.back().size += slice.size();  // adjacent in both buffers
    } else {
      routing.segments.push_back({flat_offset, routing.count, slice.size()});
    }
    routing.count += slice.size();
  }
  routing.contiguous = routing.segments.size() <= 1;
  return routing;
}

}  // namespace

absl::Span<const float> Routing::Gather(absl::Span<const float> full,
                                        std::vector<float>& scratch) const {
  if (count == 0) return {};
  if (contiguous) return full.subspan(segments[0].flat_offset, count);
  scratch.resize(count);
  for (const Segment& segment : segments) {
    std::copy_n(full.begin() + segment.flat_offset, segment.size,
                scratch.begin() + segment.shard_offset);
  }
  return scratch;
}

absl::Span<float> Routing::Target(absl::Span<float> full, std::vector<float>& scratch) const {
  if (count == 0) return {};
  if (contiguous) return full.subspan(segments[0].flat_offset, count);
  scratch.resize(count);
  return absl::MakeSpan(scratch);
}

void Routing::Scatter(const std::vector<float>& scratch, absl::Span<float> full) const {
  if (contiguous) return;
  for (const Segment& segment : segments) {
    std::copy_n(scratch.begin() + segment.shard_offset, segment.size,
                full.begin() + segment.flat_offset);
  }
}

std::vector<ServerRouting> RouteServers(const ShardingPlan& plan) {
  std::vector<ServerRouting> routings;
  for (const ShardSpec& shard : plan.shards()) {
    routings.push_back({Route(plan.parameter_layout(), shard.parameters),
                        Route(plan.state_layout(), shard.state)});
  }
  return routings;
}

}  // namespace mobilenet
