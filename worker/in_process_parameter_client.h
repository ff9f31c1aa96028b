// A ParameterClient over parameter-server cores in the same process: the same protocol
// messages the gRPC client sends, handed straight to each ParameterServerCore, so a whole
// cluster (several servers, several workers, the chief's end of training) runs in one
// process without sockets (tests, single-process training). Payloads are always float32
// (PAYLOAD_DTYPE_FLOAT32): nothing travels, so there is nothing for 16-bit formats to save.
#ifndef MOBILENET_WORKER_IN_PROCESS_PARAMETER_CLIENT_H_
#define MOBILENET_WORKER_IN_PROCESS_PARAMETER_CLIENT_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "parameter_server/core/parameter_server_core.h"
#include "parameter_server/core/sharding_plan.h"
#include "worker/parameter_client.h"
#include "worker/shard_routing.h"

namespace mobilenet {

// Thread-safe (the cores lock; the progress figures have their own lock).
class InProcessParameterClient : public ParameterClient {
 public:
  // A client of `cores` (not owned; they must outlive the client), server i of `plan` at
  // index i, pulling as `worker_id` (kToolWorkerId for tools), calling as `caller` (what
  // a transport would have identified; in the same process, trusted unless a test says
  // otherwise). InvalidArgument when the count differs from the plan's or a core serves
  // another plan or index. Calls RetainPayloadMemory() with the model's size.
  static absl::StatusOr<std::unique_ptr<InProcessParameterClient>> Create(
      const ShardingPlan& plan, std::vector<ParameterServerCore*> cores, int32_t worker_id,
      const Caller& caller = Caller::Trusted());

  using ParameterClient::Pull;
  absl::StatusOr<ModelVersion> Pull(absl::Span<float> parameters, absl::Span<float> state,
                                    WeightsKind weights, PullPurpose purpose,
                                    int64_t min_sync_step) override;
  absl::StatusOr<PushResult> Push(const PushRequest& request) override;
  std::vector<absl::StatusOr<ps::v1::StatusResponse>> GetStatus() override;
  absl::Status ReportEvaluation(int32_t worker_id, const EvaluationResult& result) override;
  absl::Status Finish(int32_t worker_id, bool training_complete) override;
  absl::StatusOr<ps::v1::LeaseResponse> LeaseData(
      int32_t worker_id, const ps::v1::DataPlan& data,
      const std::vector<ps::v1::DataBlock>& completed,
      const std::vector<ps::v1::DataBlock>& held) override;
  void set_progress(double images_per_sec, int64_t steps) override;

 private:
  InProcessParameterClient(const ShardingPlan& plan, std::vector<ParameterServerCore*> cores,
                           int32_t worker_id, const Caller& caller);

  const ShardingPlan plan_;
  const std::vector<ParameterServerCore*> cores_;
  const std::vector<ServerRouting> routing_;
  const int32_t worker_id_;
  const Caller caller_;

  mutable absl::Mutex mu_;
  double images_per_sec_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t steps_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_IN_PROCESS_PARAMETER_CLIENT_H_
