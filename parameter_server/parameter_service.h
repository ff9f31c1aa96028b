// The gRPC edge of a parameter server: carries mobilenet.ps.v1.ParameterServer requests
// to a ParameterServerCore (parameter_server/core/parameter_server_core.h), which
// validates and answers them, and carries the answers back, converting absl::Status to
// grpc::Status. Nothing here decides anything about a request.
//
// Pull is served raw: the response is a PullResponse encoded by hand around a pooled
// buffer that the core copies the weights straight into (see wire_payload.h). Push
// requests are parsed into pooled messages; the transport bounds their size
// (grpc_server.h), so a pooled message never holds more than one legal push.
#ifndef MOBILENET_PARAMETER_SERVER_PARAMETER_SERVICE_H_
#define MOBILENET_PARAMETER_SERVER_PARAMETER_SERVICE_H_

#include <memory>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "mobilenet/ps/v1/parameter_server.grpc.pb.h"
#include "parameter_server/core/parameter_server_core.h"

namespace mobilenet {

// Thread-safe: the handlers run on gRPC's threads; the core does its own locking.
class ParameterService final : public ps::v1::ParameterServer::WithRawCallbackMethod_Pull<
                                   ps::v1::ParameterServer::CallbackService> {
 public:
  // Serves `core` (not owned; must outlive the service and the server it is registered
  // with). Calls RetainPayloadMemory (wire_payload.h) with the shard's size.
  explicit ParameterService(ParameterServerCore* core);
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

 private:
  // A serialized PullResponse in `response`.
  absl::Status DoPull(const grpc::ByteBuffer& request, grpc::ByteBuffer& response);

  // Push request/response objects and Pull response buffers reused across calls, so the
  // payload buffers keep their capacity instead of being allocated (and page-faulted in)
  // per call.
  class ReusedMessages;

  ParameterServerCore* const core_;
  std::unique_ptr<ReusedMessages> reused_messages_;
};

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_PARAMETER_SERVICE_H_
