// Everything a parameter server serves at /metrics when asked to (mobilenet-ps
// --metrics_address), in one place so that the server and the benchmark that measures its
// cost (worker/transport_bench_main.cc --metrics) wire it alike: a MetricsEndpoint, the
// server's own metrics read from its core at each scrape (metrics/ps_metrics.h), and the
// gRPC server metrics of its calls (metrics/grpc_server_metrics.h), counted by an
// interceptor to install on the server's gRPC server.
#ifndef MOBILENET_METRICS_PS_METRICS_ENDPOINT_H_
#define MOBILENET_METRICS_PS_METRICS_ENDPOINT_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "metrics/grpc_server_metrics.h"
#include "metrics/metrics_endpoint.h"
#include "metrics/ps_metrics.h"
#include "parameter_server/core/parameter_server_core.h"

namespace mobilenet {

// The full names of the methods a parameter server's gRPC server answers: the
// ParameterServer service's, the health service's and server reflection's. The
// interceptor labels these by name and any other as "unknown".
std::vector<std::string> ParameterServerGrpcMethods();

// Thread-safe. Must outlive the gRPC server its interceptor is installed on (shut the
// server down first).
class ParameterServerMetricsEndpoint {
 public:
  // Listens on `address` (errors of MetricsEndpoint::Start) and serves the metrics of
  // `core` (not owned; it must outlive this) and of the calls the interceptor sees.
  static absl::StatusOr<std::unique_ptr<ParameterServerMetricsEndpoint>> Start(
      absl::string_view address, const ParameterServerCore* core);

  ParameterServerMetricsEndpoint(const ParameterServerMetricsEndpoint&) = delete;
  ParameterServerMetricsEndpoint& operator=(const ParameterServerMetricsEndpoint&) = delete;

  // For StartGrpcServer's `interceptors`; owned by this.
  grpc::experimental::ServerInterceptorFactoryInterface* interceptor() {
    return grpc_metrics_.get();
  }
  // The server's own metrics (e.g. to count checkpoints written); owned by this.
  ParameterServerMetrics& ps_metrics() { return *ps_metrics_; }
  // The port listened on (the bound one when the address asked for port 0).
  int port() const { return endpoint_->port(); }

 private:
  ParameterServerMetricsEndpoint() = default;

  // Declared in this order so that the interceptor (which counts into the endpoint's
  // registry) is destroyed first and the endpoint last.
  std::unique_ptr<MetricsEndpoint> endpoint_;
  std::shared_ptr<ParameterServerMetrics> ps_metrics_;
  std::unique_ptr<GrpcServerMetricsFactory> grpc_metrics_;
};

}  // namespace mobilenet

#endif  // MOBILENET_METRICS_PS_METRICS_ENDPOINT_H_
