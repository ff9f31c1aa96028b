#include "metrics/grpc_server_metrics.h"

#include <grpcpp/support/interceptor.h>

#include <chrono>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace mobilenet {
namespace {

const char* TypeLabel(grpc::experimental::ServerRpcInfo::Type type) {
  using Type = grpc::experimental::ServerRpcInfo::Type;
  switch (type) {
    case Type::UNARY:
      return "unary";
    case Type::CLIENT_STREAMING:
      return "client_stream";
    case Type::SERVER_STREAMING:
      return "server_stream";
    case Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unknown";
}

// Latencies from 1 ms (a status call) to a minute (a whole model's pull over a slow link).
prometheus::Histogram::BucketBoundaries HandlingBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

}  // namespace

const char* GrpcCodeLabel(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "Canceled";
    case grpc::StatusCode::UNKNOWN:
      return "Unknown";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "InvalidArgument";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DeadlineExceeded";
    case grpc::StatusCode::NOT_FOUND:
      return "NotFound";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "AlreadyExists";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PermissionDenied";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "ResourceExhausted";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FailedPrecondition";
    case grpc::StatusCode::ABORTED:
      return "Aborted";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OutOfRange";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "Unimplemented";
    case grpc::StatusCode::INTERNAL:
      return "Internal";
    case grpc::StatusCode::UNAVAILABLE:
      return "Unavailable";
    case grpc::StatusCode::DATA_LOSS:
      return "DataLoss";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "Unauthenticated";
    default:
      return "Unknown";
  }
}

std::vector<std::string> GrpcMethodsOf(const google::protobuf::ServiceDescriptor& service) {
  std::vector<std::string> methods;
  for (int i = 0; i < service.method_count(); ++i) {
    methods.push_back(absl::StrCat("/", service.full_name(), "/", service.method(i)->name()));
  }
  return methods;
}

std::vector<std::string> GrpcHealthMethods() {
  return {"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"};
}

// One per call: counts it started when created, handled (with its code) and its
// duration when the status is sent, or as Canceled if the call ends without one.
class GrpcServerMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  GrpcServerMetricsInterceptor(GrpcServerMetricsFactory& metrics,
                               grpc::experimental::ServerRpcInfo& info)
      : metrics_(metrics), start_(std::chrono::steady_clock::now()) {
    absl::string_view service = "unknown";
    absl::string_view method = "unknown";
    const absl::string_view full = info.method() != nullptr ? info.method() : "";
    const size_t slash = full.rfind('/');
    if (metrics.known_methods_.contains(full) && slash != absl::string_view::npos && slash > 1) {
      service = full.substr(1, slash - 1);
      method = full.substr(slash + 1);
    }
    labels_ = {{"grpc_service", std::string(service)},
               {"grpc_method", std::string(method)},
               {"grpc_type", TypeLabel(info.type())}};
    metrics_.started_.Add(labels_).Increment();
  }

  ~GrpcServerMetricsInterceptor() override {
    if (!handled_) Handled(grpc::StatusCode::CANCELLED);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS) &&
        !handled_) {
      Handled(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Handled(grpc::StatusCode code) {
    handled_ = true;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    metrics_.handling_seconds_.Add(labels_, HandlingBuckets()).Observe(seconds);
    std::map<std::string, std::string> labels = labels_;
    labels.emplace("grpc_code", GrpcCodeLabel(code));
    metrics_.handled_.Add(labels).Increment();
  }

  GrpcServerMetricsFactory& metrics_;
  const std::chrono::steady_clock::time_point start_;
  std::map<std::string, std::string> labels_;
  bool handled_ = false;  // hooks of one call run one at a time
};

GrpcServerMetricsFactory::GrpcServerMetricsFactory(prometheus::Registry& registry,
                                                   const std::vector<std::string>& known_methods)
    : known_methods_(known_methods.begin(), known_methods.end()),
      started_(prometheus::BuildCounter()
                   .Name("grpc_server_started_total")
                   .Help("RPCs started on the server.")
                   .Register(registry)),
      handled_(prometheus::BuildCounter()
                   .Name("grpc_server_handled_total")
                   .Help("RPCs completed on the server, by status code.")
                   .Register(registry)),
      handling_seconds_(prometheus::BuildHistogram()
                            .Name("grpc_server_handling_seconds")
                            .Help("Time from the start of an RPC to its status being sent.")
                            .Register(registry)) {}

grpc::experimental::Interceptor* GrpcServerMetricsFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new GrpcServerMetricsInterceptor(*this, *info);
}

}  // namespace mobilenet
