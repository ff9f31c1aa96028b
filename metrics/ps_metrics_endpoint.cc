#include "metrics/ps_metrics_endpoint.h"

#include <utility>

#include "common/status_macros.h"

namespace mobilenet {

std::vector<std::string> ParameterServerGrpcMethods() {
  std::vector<std::string> methods = GrpcMethodsOf(
      *ps::v1::PushRequest::descriptor()->file()->FindServiceByName("ParameterServer"));
  for (std::string& method : GrpcHealthMethods()) methods.push_back(std::move(method));
  methods.push_back("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
  return methods;
}

absl::StatusOr<std::unique_ptr<ParameterServerMetricsEndpoint>>
ParameterServerMetricsEndpoint::Start(absl::string_view address, const ParameterServerCore* core) {
  std::unique_ptr<ParameterServerMetricsEndpoint> metrics(new ParameterServerMetricsEndpoint());
  ASSIGN_OR_RETURN(metrics->endpoint_, MetricsEndpoint::Start(address));
  metrics->ps_metrics_ = std::make_shared<ParameterServerMetrics>(core);
  metrics->endpoint_->Register(metrics->ps_metrics_);
  metrics->grpc_metrics_ = std::make_unique<GrpcServerMetricsFactory>(
      metrics->endpoint_->registry(), ParameterServerGrpcMethods());
  return metrics;
}

}  // namespace mobilenet
