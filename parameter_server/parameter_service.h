// The gRPC edge of a parameter server: identifies the caller of every request
// (security/caller_authentication.h; UNAUTHENTICATED when it cannot), carries the request
// to a ParameterServerCore (parameter_server/core/parameter_server_core.h), which checks
// the caller's rights, validates and answers it, and carries the answer back, converting
// absl::Status to grpc::Status. Nothing here decides anything about a request.
//
// Pull is served raw: the response is a PullResponse encoded by hand around a pooled
// buffer that the core copies the weights straight into (see wire_payload.h). Push
// requests are parsed into pooled messages; the transport bounds their size
// (grpc_server.h), so a pooled message never holds more than one legal push.
#ifndef MOBILENET_PARAMETER_SERVER_PARAMETER_SERVICE_H_
#define MOBILENET_PARAMETER_SERVER_PARAMETER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <memory>

#include "absl/status/status.h"
#include "mobilenet/ps/v1/parameter_server.grpc.pb.h"
#include "parameter_server/core/parameter_server_core.h"
#include "security/caller_authentication.h"

namespace mobilenet {

// Thread-safe: the handlers run on gRPC's threads; the core does its own locking.
class ParameterService final : public ps::v1::ParameterServer::WithRawCallbackMethod_Pull<
                                   ps::v1::ParameterServer::CallbackService> {
 public:
  // Serves `core` to the callers `authenticator` identifies (neither owned; both must
  // outlive the service and the server it is registered with; a null authenticator
  // trusts every caller). Calls RetainPayloadMemory (wire_payload.h) with the shard's
  // size.
  explicit ParameterService(ParameterServerCore* core,
                            const CallerAuthenticator* authenticator = nullptr);
  ~ParameterService() override;

  // RPC handlers: the core's answers (see ParameterServerCore and request_validation.h
  // for the codes). A Pull whose bytes are not a PullRequest is INVALID_ARGUMENT.
  grpc::ServerUnaryReactor* Pull(grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Push(grpc::CallbackServerContext* context,
                                 const ps::v1::PushRequest* request,
                                 ps::v1::PushResponse* response) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const ps::v1::StatusRequest* request,
                                      ps::v1::StatusResponse* response) override;
  grpc::ServerUnaryReactor* ReportEvaluation(grpc::CallbackServerContext* context,
                                             const ps::v1::EvaluationReport* request,
                                             ps::v1::EvaluationAck* response) override;
  grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context,
                                   const ps::v1::FinishRequest* request,
                                   ps::v1::FinishResponse* response) override;
  grpc::ServerUnaryReactor* LeaseData(grpc::CallbackServerContext* context,
                                      const ps::v1::LeaseRequest* request,
                                      ps::v1::LeaseResponse* response) override;

 private:
  // The caller of the RPC of `context`; an UNAUTHENTICATED refusal is counted.
  absl::StatusOr<Caller> Identify(const grpc::CallbackServerContext& context);
  // A serialized PullResponse in `response`.
  absl::Status DoPull(const Caller& caller, const grpc::ByteBuffer& request,
                      grpc::ByteBuffer& response);

  // Push request/response objects and Pull response buffers reused across calls, so the
  // payload buffers keep their capacity instead of being allocated (and page-faulted in)
  // per call.
  class ReusedMessages;

  ParameterServerCore* const core_;
  const CallerAuthenticator* const authenticator_;
  std::unique_ptr<ReusedMessages> reused_messages_;
};

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_PARAMETER_SERVICE_H_
