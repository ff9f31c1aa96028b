#include "metrics/grpc_server_metrics.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parameter_server/core/parameter_server_core.h"
#include "parameter_server/core/sharding_plan.h"
#include "parameter_server/grpc_server.h"
#include "parameter_server/parameter_service.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace pb = ::mobilenet::ps::v1;

const google::protobuf::ServiceDescriptor* ParameterServerDescriptor() {
  return pb::PushRequest::descriptor()->file()->FindServiceByName("ParameterServer");
}

std::string Scrape(prometheus::Registry& registry) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  return out.str();
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return context;
}

// A real ParameterService on 127.0.0.1:0 with the metrics interceptor installed.
class GrpcServerMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MobileNetConfig model;
    model.alpha = 0.25f;
    model.resolution = 32;
    model.input_channels = 1;
    model.num_classes = 10;
    absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(model, 1);
    ASSERT_TRUE(plan.ok()) << plan.status();
    plan_ = std::make_unique<ShardingPlan>(*std::move(plan));
    ParameterShardConfig config;
    config.learning_rate.examples_per_epoch = 1000;
    absl::StatusOr<std::unique_ptr<ParameterServerCore>> core =
        ParameterServerCore::Create(*plan_, config, CoreOptions());
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
    service_ = std::make_unique<ParameterService>(core_.get());
    metrics_ = std::make_unique<GrpcServerMetricsFactory>(
        registry_, GrpcMethodsOf(*ParameterServerDescriptor()));
    absl::StatusOr<StartedServer> started =
        StartGrpcServer("127.0.0.1:0", {service_.get()}, GrpcServerLimits(), nullptr,
                        /*reflection=*/false, {metrics_.get()});
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = std::move(*started);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_.port),
                                   grpc::InsecureChannelCredentials());
    stub_ = pb::ParameterServer::NewStub(channel_);
  }

  void TearDown() override {
    if (server_.server) server_.server->Shutdown();
  }

  prometheus::Registry registry_;
  std::unique_ptr<ShardingPlan> plan_;
  std::unique_ptr<ParameterServerCore> core_;
  std::unique_ptr<ParameterService> service_;
  std::unique_ptr<GrpcServerMetricsFactory> metrics_;
  StartedServer server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::ParameterServer::Stub> stub_;
};

TEST_F(GrpcServerMetricsTest, CountsRealCallsByMethodAndCode) {
  pb::StatusResponse status;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(stub_->GetStatus(Context().get(), pb::StatusRequest(), &status).ok());
  }
  // A push of nothing is refused (wrong plan, no payload).
  pb::PushResponse pushed;
  const grpc::Status refused = stub_->Push(Context().get(), pb::PushRequest(), &pushed);
  ASSERT_FALSE(refused.ok());

  const std::string text = Scrape(registry_);
  const std::string status_labels =
      "grpc_method=\"GetStatus\",grpc_service=\"mobilenet.ps.v1.ParameterServer\","
      "grpc_type=\"unary\"";
  EXPECT_THAT(text, HasSubstr(absl::StrCat("grpc_server_started_total{", status_labels, "} 2")));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("grpc_server_handled_total{grpc_code=\"OK\",",
                                           status_labels, "} 2")));
  EXPECT_THAT(text,
              HasSubstr(absl::StrCat("grpc_server_handling_seconds_count{", status_labels, "} 2")));
  EXPECT_THAT(text,
              HasSubstr(absl::StrCat(
                  "grpc_server_handled_total{grpc_code=\"", GrpcCodeLabel(refused.error_code()),
                  "\",grpc_method=\"Push\",grpc_service=\"mobilenet.ps.v1.ParameterServer\","
                  "grpc_type=\"unary\"} 1")));
}

// Calls `method` with an empty message through `channel`; returns the status.
grpc::Status CallGeneric(const std::shared_ptr<grpc::Channel>& channel, const std::string& method) {
  grpc::GenericStub generic(channel);
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  grpc::Status answer;
  bool done = false;
  std::mutex mu;
  std::condition_variable cv;
  auto context = Context();
  generic.UnaryCall(context.get(), method, grpc::StubOptions(), &request, &response,
                    [&](grpc::Status s) {
                      std::lock_guard<std::mutex> lock(mu);
                      answer = s;
                      done = true;
                      cv.notify_one();
                    });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  return answer;
}

TEST_F(GrpcServerMetricsTest, MethodsOfStrangersGetNoLabelsOfTheirOwn) {
  const std::string stranger = "/evil.Service/Steal" + std::string(200, 'x');
  // The parameter server's own server (gRPC's handler of unknown methods, a bidi stream).
  EXPECT_EQ(CallGeneric(channel_, stranger).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  // A server whose generic handler takes every method.
  absl::StatusOr<StartedServer> catch_all = StartGrpcServer(
      "127.0.0.1:0", {}, GrpcServerLimits(), nullptr, /*reflection=*/false, {metrics_.get()});
  ASSERT_TRUE(catch_all.ok()) << catch_all.status();
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", catch_all->port),
                                     grpc::InsecureChannelCredentials());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(CallGeneric(channel, absl::StrCat(stranger, i)).error_code(),
              grpc::StatusCode::UNIMPLEMENTED);
  }
  catch_all->server->Shutdown();

  const std::string text = Scrape(registry_);
  EXPECT_THAT(text, Not(HasSubstr("evil")));
  EXPECT_THAT(text, Not(HasSubstr("Steal")));
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total{grpc_code=\"Unimplemented\","
                              "grpc_method=\"unknown\",grpc_service=\"unknown\","
                              "grpc_type=\"bidi_stream\"} 4"));
}

TEST(GrpcServerMetricsNamesTest, MethodsOfTheServiceAndCodeNames) {
  EXPECT_THAT(GrpcMethodsOf(*ParameterServerDescriptor()),
              testing::Contains("/mobilenet.ps.v1.ParameterServer/Push"));
  EXPECT_STREQ(GrpcCodeLabel(grpc::StatusCode::INVALID_ARGUMENT), "InvalidArgument");
  EXPECT_STREQ(GrpcCodeLabel(grpc::StatusCode::CANCELLED), "Canceled");
}

}  // namespace
}  // namespace mobilenet
