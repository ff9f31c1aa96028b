// gRPC server metrics with the names and labels of go-grpc-prometheus, the exporter most
// Prometheus dashboards for gRPC expect:
//   grpc_server_started_total{grpc_service,grpc_method,grpc_type}
//   grpc_server_handled_total{grpc_service,grpc_method,grpc_type,grpc_code}
//   grpc_server_handling_seconds{grpc_service,grpc_method,grpc_type} (histogram)
// grpc_type is unary, client_stream, server_stream or bidi_stream; grpc_code the status
// code's name as go-grpc-prometheus spells it (OK, InvalidArgument, ...). Only the methods
// named at construction get their own label values; any other method name a caller sends
// is counted as service "unknown", method "unknown", so strangers cannot grow the series.
// Costs, per RPC and not per byte or element of a message: one label lookup (a
// prometheus-cpp family lock, and a throwaway metric allocated by Family::Add) for each of
// the three metrics, and the histogram's own lock in Observe; the counters are atomic.
#ifndef MOBILENET_METRICS_GRPC_SERVER_METRICS_H_
#define MOBILENET_METRICS_GRPC_SERVER_METRICS_H_

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "google/protobuf/descriptor.h"

namespace mobilenet {

// The full gRPC method names ("/package.Service/Method") of `service`.
std::vector<std::string> GrpcMethodsOf(const google::protobuf::ServiceDescriptor& service);

// The standard health service's methods ("/grpc.health.v1.Health/Check" and Watch).
std::vector<std::string> GrpcHealthMethods();

// Install on a server with ServerBuilder::experimental().SetInterceptorCreators (see
// StartGrpcServer). Thread-safe; must outlive the servers it is installed on.
class GrpcServerMetricsFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // Registers the three families in `registry` (which must outlive this), counting the
  // calls of `known_methods` (full names) by name and every other call as "unknown".
  GrpcServerMetricsFactory(prometheus::Registry& registry,
                           const std::vector<std::string>& known_methods);

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  friend class GrpcServerMetricsInterceptor;

  const absl::flat_hash_set<std::string> known_methods_;
  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& handling_seconds_;
};

// The status code's name as go-grpc-prometheus labels it (Go's codes.Code.String()).
const char* GrpcCodeLabel(grpc::StatusCode code);

}  // namespace mobilenet

#endif  // MOBILENET_METRICS_GRPC_SERVER_METRICS_H_
