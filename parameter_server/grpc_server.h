// A gRPC server for parameter-server services, with limits that follow from what it
// serves rather than from generous constants: the largest message it accepts is its
// shard's largest legal message, and the memory gRPC may hold for requests being
// received is bounded (a ResourceQuota), so a flood of oversized or concurrent requests
// is refused before it can exhaust the process.
#ifndef MOBILENET_PARAMETER_SERVER_GRPC_SERVER_H_
#define MOBILENET_PARAMETER_SERVER_GRPC_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mobilenet {

struct GrpcServerLimits {
  // Largest message received or sent (e.g. MessageLimitForPayload of the shard's bytes).
  int max_message_bytes = 4 << 20;
  // Memory gRPC may use for the requests it is receiving and the responses it is sending
  // at once; beyond it new requests are refused (RESOURCE_EXHAUSTED) until memory is
  // given back.
  int64_t memory_budget_bytes = int64_t{256} << 20;
};

// Limits for a parameter server whose largest message is `max_message_bytes`, serving
// `num_workers` workers: room for every worker's push and pull in flight at once and for
// a few tools, at least 64 MiB.
GrpcServerLimits ParameterServerLimits(int max_message_bytes, int num_workers);

// A started gRPC server and the port it listens on.
// Keep it whole while the server runs (it owns what the server calls).
struct StartedServer {
  // Answers UNIMPLEMENTED to every method of a server started without services (gRPC
  // refuses to start a server that serves health alone). Outlives `server`.
  std::unique_ptr<grpc::CallbackGenericService> unknown_methods;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

// Builds and starts a server listening on `address` exactly as given ("127.0.0.1:2222",
// "[::1]:0", "0.0.0.0:2222" only if asked) with `credentials` (null: insecure), serving
// `services` (not owned; they must outlive the server) plus the standard health service
// (reporting SERVING) and, when `reflection`, server reflection (off when callers are
// authenticated: it would describe the service to anyone), with `limits` and the
// large-message settings of common/grpc_status.h;
// a port already taken by another server is an error (no SO_REUSEPORT sharing). Port 0
// picks a free port, returned in `port`. Unavailable naming the address when it cannot be
// bound; InvalidArgument for an address without a port. `interceptors` (not owned; they
// must outlive the server) see every call, e.g. metrics/grpc_server_metrics.h.
absl::StatusOr<StartedServer> StartGrpcServer(
    absl::string_view address, const std::vector<grpc::Service*>& services,
    const GrpcServerLimits& limits, std::shared_ptr<grpc::ServerCredentials> credentials = nullptr,
    bool reflection = true,
    const std::vector<grpc::experimental::ServerInterceptorFactoryInterface*>& interceptors = {});

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_GRPC_SERVER_H_
