// Where each parameter server's part of the model lives in the full-model buffers a
// worker computes with: a server exchanges its slices concatenated in plan order, and
// each slice is a range of the flat parameter (or state) buffer. Both clients
// (in-process and gRPC) route through this.
#ifndef MOBILENET_WORKER_SHARD_ROUTING_H_
#define MOBILENET_WORKER_SHARD_ROUTING_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "parameter_server/core/sharding_plan.h"

namespace mobilenet {

// `size` floats at `shard_offset` of a server's concatenated buffer are the full buffer's
// floats at `flat_offset`.
struct Segment {
  int64_t flat_offset = 0;
  int64_t shard_offset = 0;
  int64_t size = 0;
};

// How one server's concatenated buffer maps onto a full-model buffer.
struct Routing {
  std::vector<Segment> segments;  // in the server's order; adjacent ranges merged
  int64_t count = 0;              // floats in the server's buffer
  // One segment (or none): the server's buffer is exactly the full buffer's subspan at
  // segments[0].flat_offset (no copy needed).
  bool contiguous = false;

  // The server's buffer within `full`: a subspan when contiguous, else `scratch` filled
  // from it.
  absl::Span<const float> Gather(absl::Span<const float> full, std::vector<float>& scratch) const;
  // Where the server's buffer should be written to land in `full`: a subspan when
  // contiguous, else `scratch` (resized), to be copied into place by Scatter.
  absl::Span<float> Target(absl::Span<float> full, std::vector<float>& scratch) const;
  // Copies `scratch` (filled through Target) into place; nothing when contiguous.
  void Scatter(const std::vector<float>& scratch, absl::Span<float> full) const;
};

struct ServerRouting {
  Routing parameters;
  Routing state;
};

// The routing of every server of `plan`, in plan order.
std::vector<ServerRouting> RouteServers(const ShardingPlan& plan);

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_SHARD_ROUTING_H_
