// A ParameterClient over gRPC: one channel per parameter server (in plan order), every
// call sent to all servers in parallel with the callback API, each RPC attempt under a
// deadline, and transient failures (see IsTransient) retried with capped, jittered
// exponential backoff for up to a total patience, so a worker waits while a parameter
// server restarts and fails with a clear error if it never returns. An answer that
// retrying cannot change (another plan, an invalid request) ends the call at once, for
// every server. A retried Push reuses its request_id and is applied exactly once.
#ifndef MOBILENET_WORKER_GRPC_PARAMETER_CLIENT_H_
#define MOBILENET_WORKER_GRPC_PARAMETER_CLIENT_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/float_conversion.h"
#include "mobilenet/ps/v1/parameter_server.grpc.pb.h"
#include "parameter_server/core/sharding_plan.h"
#include "parameter_server/wire_payload.h"
#include "security/transport_security.h"
#include "worker/error_feedback_residuals.h"
#include "worker/parameter_client.h"
#include "worker/shard_routing.h"

namespace mobilenet {

struct GrpcParameterClientOptions {
  // Deadline of each RPC attempt. A full 1.0 MobileNet shard is ~17 MB; keep this well
  // above its transfer time.
  absl::Duration rpc_timeout = absl::Seconds(30);
  // Time one call (Pull, Push, ...) keeps retrying transient failures before returning
  // the last error (e.g. while a parameter server restarts): no attempt starts after it,
  // so a call returns within about patience + rpc_timeout. Zero: a single attempt.
  absl::Duration patience = absl::Minutes(5);
  // Backoff before retry k (k = 0, 1, ...): min(max_backoff, initial_backoff * 2^k),
  // scaled by a random factor in [0.5, 1.0]. Also bounds the channels' reconnect backoff,
  // so a restarted server is noticed within about max_backoff.
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  // Sent with pulls for the servers' per-worker bookkeeping; -1 for tools. Pushes carry
  // PushRequest::worker_id.
  int32_t worker_id = -1;
  // Called (on the calling thread) with a one-line description of each transient failure
  // about to be retried, e.g. to tell the user the worker is waiting for a server; may be
  // empty.
  std::function<void(const std::string&)> on_retry;
  // Called alongside on_retry with the RPC ("Pull", "Push", ...) and the status code of
  // the failure about to be retried, e.g. to count retries by cause; may be empty.
  std::function<void(absl::string_view rpc, grpc::StatusCode code)> on_retry_cause;
  // How this client proves who it is and checks the servers (security/transport_security.h):
  // with TLS, server i must present a certificate naming "ps-<i>"; with a token file, its
  // secret goes with every call.
  TransportSecurity security;
  // When *stop becomes true (e.g. on SIGTERM), calls retry no more: a server that would be
  // tried again ends with CANCELLED "stopped on request". Attempts in flight, and each
  // server's first attempt (a push computed before the stop is still sent), get their
  // answer (within rpc_timeout).
  // Not owned; may be null.
  const std::atomic<bool>* stop = nullptr;
  // The wire formats (PayloadDtype; parameter_server.proto says why they may differ):
  // of pushed gradients, sent with error feedback when 16-bit
  // (worker/error_feedback_residuals.h), and of the weights of training pulls
  // (PullPurpose::kTraining). Reads (evaluation, export, tools) always pull float32: they
  // should see the servers' weights exactly. Batch-norm payloads are always float32.
  WireDtype push_dtype = WireDtype::kFloat32;
  WireDtype pull_dtype = WireDtype::kFloat32;
  // --sync_replicas: pulls ask server 0 first and relay its decision to the others
  // (ParameterClient::Pull); pushes of a synchronous step reach server 0 last.
  bool sync_replicas = false;
};

// "gradients bf16 (error feedback), training weights fp32", for logs.
std::string DescribeWireFormats(const GrpcParameterClientOptions& options);

// Thread-safe: several training threads may share one client (each call has its own
// RPC state; channels and stubs are shared).
class GrpcParameterClient : public ParameterClient {
 public:
  // A client of the servers at `addresses` ("host:port", one per PS task, in plan order),
  // over channels with options.security's credentials whose message limit is the plan's
  // largest server payload (MessageLimitForPayload), with the large-message settings of
  // common/grpc_status.h. Connects lazily: no RPC is made here. Calls
  // RetainPayloadMemory() with the model's size (parameter_server/wire_payload.h).
  // InvalidArgument when the address count is not plan.num_shards(), an address is empty,
  // an option is out of range (rpc_timeout > 0, patience >= 0, 0 < initial_backoff <=
  // max_backoff) or a security setting is (CheckTransportSecurity, the token file).
  static absl::StatusOr<std::unique_ptr<GrpcParameterClient>> Create(
      const ShardingPlan& plan, std::vector<std::string> addresses,
      const GrpcParameterClientOptions& options = {});

  // The same over ready-made channels (tests: e.g. grpc::Server::InProcessChannel), which
  // should have their message limits raised (ChannelArgumentsForPlan). `names` label the
  // servers in error messages. InvalidArgument when the counts differ from the plan.
  static absl::StatusOr<std::unique_ptr<GrpcParameterClient>> CreateWithChannels(
      const ShardingPlan& plan, std::vector<std::shared_ptr<grpc::Channel>> channels,
      std::vector<std::string> names, const GrpcParameterClientOptions& options = {});

  // ParameterClient. Errors from a server are prefixed with "parameter server <i>
  // (<address>) <method>": e.g. FAILED_PRECONDITION for a plan mismatch, and after the
  // patience is spent UNAVAILABLE or DEADLINE_EXCEEDED with the number of attempts made.
  // Pull copies each server's payload from the received bytes straight into place
  // (decoding 16-bit weights on the way; a server that predates PayloadDtype answers
  // float32, which is accepted). Push sends float32 gradients and the statistics straight
  // from the caller's buffers (no copy), 16-bit gradients from a buffer they are encoded
  // into with error feedback, and returns only once gRPC has released them; it also sends
  // the progress figures set with set_progress (for the servers' status table).
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

  const ShardingPlan& plan() const { return plan_; }

 private:
  struct Shard {
    std::string name;  // the address, for messages
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<ps::v1::ParameterServer::Stub> stub;
    // Pull and Push go through the generic stub with hand-encoded payload fields (see
    // parameter_server/wire_payload.h): pushed gradients are sent straight from the
    // caller's buffer and pulled weights copied straight from the received bytes into it.
    std::unique_ptr<grpc::GenericStub> generic_stub;
    ServerRouting routing;
  };

  GrpcParameterClient(const ShardingPlan& plan, std::vector<Shard> shards,
                      const GrpcParameterClientOptions& options, std::string authorization);

  // The servers' names (addresses), in plan order, for messages.
  std::vector<std::string> Names() const;
  // A fresh seed for one call's backoff jitter.
  uint64_t NextSeed();

  const ShardingPlan plan_;
  const std::vector<Shard> shards_;
  const GrpcParameterClientOptions options_;
  // 16-bit pushes: their encoded gradients' memory, and the rounding residuals.
  const std::shared_ptr<SliceBufferPool> push_buffers_;
  ErrorFeedbackResiduals residuals_;
  // "Bearer <secret>" sent with every call, or empty without a token file.
  std::string authorization_;

  mutable absl::Mutex mu_;
  double images_per_sec_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t steps_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t seed_state_ ABSL_GUARDED_BY(mu_) = 0;
};

// Failures a call retries: UNAVAILABLE (no server yet, connection lost), DEADLINE_EXCEEDED
// (an attempt ran out of time), CANCELLED (a server shutting down, e.g. on SIGTERM,
// cancels the calls it is serving) and RESOURCE_EXHAUSTED (a server's memory budget for
// requests in flight is full; this client never sends a message above the limit). A
// retried Push is applied once, by request id.
bool IsTransient(grpc::StatusCode code);

// The channel arguments of a client of `plan`'s server `server` (message limits from the
// plan, the name the server's certificate must carry).
grpc::ChannelArguments ChannelArgumentsForPlan(const ShardingPlan& plan, int server,
                                               const GrpcParameterClientOptions& options);

// One Status attempt per address (server i checked against the name "ps-<i>" with TLS),
// in parallel, each under `timeout`, without a plan (for `mobilenet-ctl status`): each
// server's response or its error prefixed with its address.
std::vector<absl::StatusOr<ps::v1::StatusResponse>> QueryParameterServerStatus(
    const std::vector<std::string>& addresses, absl::Duration timeout,
    const TransportSecurity& security = {});

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_GRPC_PARAMETER_CLIENT_H_
