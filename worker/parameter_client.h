// The interface a worker trains against: pull the whole model, push gradients for the
// whole model, ask for status. Implementations route the full-model buffers to the
// parameter-server shards holding each range: in the same process
// (in_process_parameter_client.h) or over gRPC.
#ifndef MOBILENET_WORKER_PARAMETER_CLIENT_H_
#define MOBILENET_WORKER_PARAMETER_CLIENT_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "parameter_server/parameter_shard.h"

namespace mobilenet {

// The version of every shard at a pull, in the client's shard order. Each shard counts
// its own pushes; a push carries back the versions its gradients were computed from.
struct ModelVersion {
  std::vector<int64_t> shard_versions;
  // Which run of each shard's server served the pull (PullResponse.server_incarnation),
  // in the same order; empty when the transport has none (in-process). A push carries it
  // back so that a restarted server refuses gradients computed from its earlier run.
  std::vector<uint64_t> shard_incarnations;

  // The smallest shard version (pushes applied everywhere); 0 when there are no shards.
  int64_t global_step() const {
    return shard_versions.empty() ? 0
                                  : *std::min_element(shard_versions.begin(), shard_versions.end());
  }
};

// One training step's contribution. The spans are not owned and must outlive the call.
struct PushRequest {
  int32_t worker_id = 0;
  // Unique per worker; resending the same request (e.g. after a transport error) is
  // applied at most once by every shard.
  uint64_t request_id = 0;
  ModelVersion computed_from;  // as returned by the Pull the gradients were computed on
  int64_t example_count = 0;   // batch size, >= 1
  // The full parameter layout: d loss / d weights, weight decay and clipping applied.
  absl::Span<const float> gradients;
  // Empty, or the full state layout: batch means and UNBIASED batch variances (see
  // parameter_server/batch_statistics.h).
  absl::Span<const float> batch_stats;
};

struct PushResult {
  ModelVersion version;        // every shard's version once this push is counted
  int64_t max_staleness = 0;   // over shards
  float learning_rate = 0.0f;  // the rate the first shard applied
};

struct ParameterServerStatus {
  std::vector<ShardStatus> shards;  // in the client's shard order

  // The smallest shard version and examples seen; 0 when there are no shards.
  int64_t global_step() const;
  int64_t examples_seen() const;
};

inline int64_t ParameterServerStatus::global_step() const {
  int64_t step = shards.empty() ? 0 : shards[0].version;
  for (const ShardStatus& s : shards) step = std::min(step, s.version);
  return step;
}

inline int64_t ParameterServerStatus::examples_seen() const {
  int64_t seen = shards.empty() ? 0 : shards[0].examples_seen;
  for (const ShardStatus& s : shards) seen = std::min(seen, s.examples_seen);
  return seen;
}

// Implementations are thread-safe: several training threads may share one client.
class ParameterClient {
 public:
  virtual ~ParameterClient() = default;

  // Copies the current weights into `parameters` (the full parameter layout) and moving
  // statistics into `state` (the full state layout, or empty to skip them); returns the
  // versions read. InvalidArgument for a wrong buffer size; a shard's or the transport's
  // error otherwise (the buffers may then be partly written).
  virtual absl::StatusOr<ModelVersion> Pull(absl::Span<float> parameters,
                                            absl::Span<float> state) = 0;

  // Sends each shard its ranges of the request. Errors: InvalidArgument for wrong sizes, a
  // version list of the wrong length or a NaN/infinite value (named by tensor and index),
  // found before any shard is sent anything; otherwise the first failing shard's error,
  // prefixed with its index (e.g. Aborted when too stale: pull again). A push is not
  // atomic across shards: after a shard's error, the others may have applied it;
  // resending the same request_id is safe.
  virtual absl::StatusOr<PushResult> Push(const PushRequest& request) = 0;

  // Counters of every shard.
  virtual absl::StatusOr<ParameterServerStatus> GetStatus() = 0;
};

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_PARAMETER_CLIENT_H_
