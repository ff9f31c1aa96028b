#include "parameter_server/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/resource_quota.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace mobilenet {
namespace {

// Takes the reflection plugin (added to every builder once initialized) off one server.
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [](const std::unique_ptr<grpc::ServerBuilderPlugin>& plugin) {
                                    return plugin->name() == kReflectionPlugin;
                                  }),
                   plugins->end());
  }

 private:
  // grpc::reflection::ProtoServerReflectionPlugin::name().
  static constexpr char kReflectionPlugin[] = "proto_server_reflection";
};

// Every call it receives (a method no service serves) ends UNIMPLEMENTED.
class UnknownMethods final : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    class Refusal final : public grpc::ServerGenericBidiReactor {
     public:
      Refusal() { Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "")); }
      void OnDone() override { delete this; }
    };
    return new Refusal;
  }
};

// Lends a factory the caller owns to a builder, which takes ownership of what it is given.
class BorrowedInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit BorrowedInterceptorFactory(
      grpc::experimental::ServerInterceptorFactoryInterface* factory)
      : factory_(factory) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return factory_->CreateServerInterceptor(info);
  }

 private:
  grpc::experimental::ServerInterceptorFactoryInterface* const factory_;
};

}  // namespace

GrpcServerLimits ParameterServerLimits(int max_message_bytes, int num_workers) {
  GrpcServerLimits limits;
  limits.max_message_bytes = max_message_bytes;
  // A push and a pull per worker, and as much again for tools and retries.
  limits.memory_budget_bytes = std::max<int64_t>(
      int64_t{64} << 20, int64_t{4} * (std::max(num_workers, 1) + 2) * max_message_bytes);
  return limits;
}

absl::StatusOr<StartedServer> StartGrpcServer(
    absl::string_view address, const std::vector<grpc::Service*>& services,
    const GrpcServerLimits& limits, std::shared_ptr<grpc::ServerCredentials> credentials,
    bool reflection,
    const std::vector<grpc::experimental::ServerInterceptorFactoryInterface*>& interceptors) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon + 1 == address.size() ||
      !std::all_of(address.begin() + colon + 1, address.end(),
                   [](char c) { return absl::ascii_isdigit(c); })) {
    return absl::InvalidArgumentError(
        absl::StrCat("listening address \"", address, "\": expected host:port"));
  }
  grpc::EnableDefaultHealthCheckService(true);
  // The plugin, once initialized, adds reflection to every server built afterwards; a
  // server without it must remove it (below).
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (!reflection) builder.SetOption(std::make_unique<WithoutReflection>());
  StartedServer started;
  builder.AddListeningPort(std::string(address),
                           credentials != nullptr ? credentials : grpc::InsecureServerCredentials(),
                           &started.port);
  builder.SetMaxReceiveMessageSize(limits.max_message_bytes);
  builder.SetMaxSendMessageSize(limits.max_message_bytes);
  for (const auto& [name, value] : LargeMessageChannelArguments(limits.max_message_bytes)) {
    builder.AddChannelArgument(name, value);
  }
  grpc::ResourceQuota quota(absl::StrCat("server ", address));
  quota.Resize(static_cast<size_t>(limits.memory_budget_bytes));
  builder.SetResourceQuota(quota);
  // A second server on a taken port must fail, not share it (gRPC's Linux default).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  for (grpc::Service* service : services) builder.RegisterService(service);
  if (!interceptors.empty()) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    for (auto* factory : interceptors) {
      creators.push_back(std::make_unique<BorrowedInterceptorFactory>(factory));
    }
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  if (services.empty()) {
    started.unknown_methods = std::make_unique<UnknownMethods>();
    builder.RegisterCallbackGenericService(started.unknown_methods.get());
  }
  started.server = builder.BuildAndStart();
  if (started.server == nullptr || started.port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "could not listen on ", address, " (address in use, or not an address of this host?)"));
  }
  return started;
}

}  // namespace mobilenet
