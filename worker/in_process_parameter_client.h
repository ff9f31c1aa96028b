// A ParameterClient over ParameterShard objects in the same process: the whole training
// loop runs in one process without sockets (tests, single-machine training).
#ifndef MOBILENET_WORKER_IN_PROCESS_PARAMETER_CLIENT_H_
#define MOBILENET_WORKER_IN_PROCESS_PARAMETER_CLIENT_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/parameter_layout.h"
#include "parameter_server/parameter_shard.h"
#include "worker/parameter_client.h"

namespace mobilenet {

// Thread-safe (holds no mutable state; the shards lock).
class InProcessParameterClient : public ParameterClient {
 public:
  // A client over `shards` (not owned; they must outlive the client), whose specs must
  // together hold every element of `parameters` and of `state` exactly once.
  // InvalidArgument naming the first range held twice or by no shard, or no shards;
  // NotFound for a slice naming a tensor absent from the layouts.
  static absl::StatusOr<std::unique_ptr<InProcessParameterClient>> Create(
      const ParameterLayout& parameters, const ParameterLayout& state,
      std::vector<ParameterShard*> shards);

  absl::StatusOr<ModelVersion> Pull(absl::Span<float> parameters, absl::Span<float> state) override;
  absl::StatusOr<PushResult> Push(const PushRequest& request) override;
  absl::StatusOr<ParameterServerStatus> GetStatus() override;

 private:
  // Where `size` floats at `shard_offset` of a shard's concatenated buffer live in the
  // full-model flat buffer.
  struct Segment {
    int64_t flat_offset = 0;
    int64_t shard_offset = 0;
    int64_t size = 0;
  };
  // How one shard's concatenated buffer maps onto a full-model buffer.
  struct Routing {
    std::vector<Segment> segments;
    int64_t count = 0;
    // The segments are one contiguous flat range in order, so the shard's buffer is
    // exactly the full buffer's subspan at segments[0].flat_offset (no copy needed).
    bool contiguous = false;
  };
  struct ShardRouting {
    ParameterShard* shard;
    Routing parameters;
    Routing state;
  };

  // The shard's buffer within a full-model buffer: a subspan of `full` when contiguous,
  // else `scratch` filled from it.
  static absl::Span<const float> Gather(const Routing& routing, absl::Span<const float> full,
                                        std::vector<float>& scratch);
  // Where a shard should pull to: a subspan of `full` when contiguous, else `scratch`
  // (resized), to be copied into place by Scatter.
  static absl::Span<float> PullTarget(const Routing& routing, absl::Span<float> full,
                                      std::vector<float>& scratch);
  static void Scatter(const Routing& routing, const std::vector<float>& scratch,
                      absl::Span<float> full);

  InProcessParameterClient(const ParameterLayout& parameters, const ParameterLayout& state,
                           std::vector<ShardRouting> shards);

  // InvalidArgument naming the tensor and index of the first non-finite value of
  // `values` (a full buffer of `layout`), or OK.
  static absl::Status CheckFinite(const ParameterLayout& layout, absl::Span<const float> values,
                                  const char* what);

  const ParameterLayout parameters_;
  const ParameterLayout state_;
  const std::vector<ShardRouting> shards_;
};

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_IN_PROCESS_PARAMETER_CLIENT_H_
