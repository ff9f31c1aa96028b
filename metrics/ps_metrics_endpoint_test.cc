#include "metrics/ps_metrics_endpoint.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/metrics_scraper.h"
#include "parameter_server/core/parameter_server_core.h"
#include "parameter_server/core/sharding_plan.h"
#include "parameter_server/grpc_server.h"
#include "parameter_server/parameter_service.h"

namespace mobilenet {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
namespace pb = ::mobilenet::ps::v1;

TEST(ParameterServerGrpcMethodsTest, NamesTheServicesAParameterServerAnswers) {
  const std::vector<std::string> methods = ParameterServerGrpcMethods();
  EXPECT_THAT(methods, Contains("/mobilenet.ps.v1.ParameterServer/Push"));
  EXPECT_THAT(methods, Contains("/mobilenet.ps.v1.ParameterServer/Pull"));
  EXPECT_THAT(methods, Contains("/grpc.health.v1.Health/Check"));
  EXPECT_THAT(methods, Contains("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"));
}

// The core of the only server of a small model's plan.
class ParameterServerMetricsEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MobileNetConfig model;
    model.alpha = 0.25f;
    model.resolution = 32;
    model.input_channels = 1;
    model.num_classes = 10;
    absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(model, 1);
    ASSERT_TRUE(plan.ok()) << plan.status();
    ParameterShardConfig config;
    config.learning_rate.examples_per_epoch = 1000;
    absl::StatusOr<std::unique_ptr<ParameterServerCore>> core =
        ParameterServerCore::Create(*plan, config, CoreOptions());
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = *std::move(core);
  }

  std::unique_ptr<ParameterServerCore> core_;
};

// A parameter server as mobilenet-ps --metrics_address wires it: its core's metrics and
// the calls of its gRPC server, on one endpoint.
TEST_F(ParameterServerMetricsEndpointTest, ServesTheCoreAndTheCallsOfItsServer) {
  absl::StatusOr<std::unique_ptr<ParameterServerMetricsEndpoint>> metrics =
      ParameterServerMetricsEndpoint::Start("127.0.0.1:0", core_.get());
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  ParameterService service(core_.get());
  absl::StatusOr<StartedServer> server =
      StartGrpcServer("127.0.0.1:0", {&service}, GrpcServerLimits(), nullptr,
                      /*reflection=*/true, {(*metrics)->interceptor()});
  ASSERT_TRUE(server.ok()) << server.status();

  auto stub = pb::ParameterServer::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", server->port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  pb::StatusResponse status;
  ASSERT_TRUE(stub->GetStatus(&context, pb::StatusRequest(), &status).ok());
  (*metrics)->ps_metrics().RecordCheckpointWritten(absl::Milliseconds(250));

  absl::StatusOr<MetricsScrape> scrape = ScrapeMetrics("127.0.0.1", (*metrics)->port());
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  EXPECT_THAT(scrape->body, HasSubstr("mobilenet_ps_global_step 0"));
  EXPECT_THAT(scrape->body, HasSubstr("mobilenet_ps_checkpoints_written_total 1"));
  EXPECT_THAT(scrape->body,
              HasSubstr("grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"GetStatus\","
                        "grpc_service=\"mobilenet.ps.v1.ParameterServer\",grpc_type=\"unary\"} 1"));
  server->server->Shutdown();
}

TEST_F(ParameterServerMetricsEndpointTest, AMalformedAddressIsRefusedNamingIt) {
  auto metrics = ParameterServerMetricsEndpoint::Start("localhost", core_.get());
  ASSERT_FALSE(metrics.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(metrics.status())) << metrics.status();
  EXPECT_THAT(std::string(metrics.status().message()), HasSubstr("\"localhost\""));
}

}  // namespace
}  // namespace mobilenet
