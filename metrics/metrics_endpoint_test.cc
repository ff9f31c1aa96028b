#include "metrics/metrics_endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

// The whole HTTP response to GET `path` from 127.0.0.1:`port` (empty when it cannot connect).
std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t n;
      while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
    }
  }
  close(fd);
  return response;
}

TEST(MetricsEndpointTest, ServesTheRegistryOverHttpOnAFreePort) {
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  ASSERT_GT((*endpoint)->port(), 0);
  prometheus::BuildCounter()
      .Name("test_things_total")
      .Help("Things counted by the test.")
      .Register((*endpoint)->registry())
      .Add({{"kind", "blue"}})
      .Increment(3);

  const std::string response = HttpGet((*endpoint)->port(), "/metrics");
  EXPECT_THAT(response, HasSubstr("200 OK"));
  EXPECT_THAT(response, HasSubstr("# TYPE test_things_total counter"));
  EXPECT_THAT(response, HasSubstr("test_things_total{kind=\"blue\"} 3"));
}

TEST(MetricsEndpointTest, RefusesAMalformedAddressNamingIt) {
  for (const char* address :
       {"nonsense", "127.0.0.1:", "127.0.0.1:http", ":9100", "127.0.0.1:70000"}) {
    auto endpoint = MetricsEndpoint::Start(address);
    ASSERT_FALSE(endpoint.ok()) << address;
    EXPECT_TRUE(absl::IsInvalidArgument(endpoint.status())) << endpoint.status();
    EXPECT_THAT(std::string(endpoint.status().message()), HasSubstr(address));
  }
}

TEST(MetricsEndpointTest, AnAddressOfAnotherHostIsAnErrorNamingIt) {
  const std::string address = "192.0.2.1:0";  // TEST-NET-1: no host has it
  auto endpoint = MetricsEndpoint::Start(address);
  ASSERT_FALSE(endpoint.ok());
  EXPECT_TRUE(absl::IsUnavailable(endpoint.status())) << endpoint.status();
  EXPECT_THAT(std::string(endpoint.status().message()), HasSubstr(address));
}

TEST(MetricsEndpointTest, APortInUseIsAnErrorNamingTheAddress) {
  auto first = MetricsEndpoint::Start("127.0.0.1:0");
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string address = absl::StrCat("127.0.0.1:", (*first)->port());
  auto second = MetricsEndpoint::Start(address);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsUnavailable(second.status())) << second.status();
  EXPECT_THAT(std::string(second.status().message()), HasSubstr(address));
}

}  // namespace
}  // namespace mobilenet
