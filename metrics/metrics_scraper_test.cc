#include "metrics/metrics_scraper.h"

#include <prometheus/counter.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/metrics_endpoint.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::unique_ptr<MetricsEndpoint> EndpointCountingThree() {
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0");
  EXPECT_TRUE(endpoint.ok()) << endpoint.status();
  if (!endpoint.ok()) return nullptr;
  prometheus::BuildCounter()
      .Name("test_things_total")
      .Help("Things counted by the test.")
      .Register((*endpoint)->registry())
      .Add({{"kind", "blue"}})
      .Increment(3);
  return *std::move(endpoint);
}

TEST(ScrapeMetricsTest, ReadsTheTextFormat) {
  std::unique_ptr<MetricsEndpoint> endpoint = EndpointCountingThree();
  ASSERT_NE(endpoint, nullptr);
  absl::StatusOr<MetricsScrape> scrape = ScrapeMetrics("127.0.0.1", endpoint->port());
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  EXPECT_FALSE(scrape->gzip);
  EXPECT_THAT(scrape->body, HasSubstr("test_things_total{kind=\"blue\"} 3"));
}

TEST(ScrapeMetricsTest, AsksForGzipAsPrometheusDoes) {
  std::unique_ptr<MetricsEndpoint> endpoint = EndpointCountingThree();
  ASSERT_NE(endpoint, nullptr);
  MetricsScrapeOptions options;
  options.accept_gzip = true;
  absl::StatusOr<MetricsScrape> scrape = ScrapeMetrics("127.0.0.1", endpoint->port(), options);
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  EXPECT_TRUE(scrape->gzip);
  EXPECT_THAT(scrape->body, StartsWith("\x1f\x8b"));  // the gzip magic number
}

TEST(ScrapeMetricsTest, NothingListeningIsUnavailableNamingTheAddress) {
  int port;
  {
    std::unique_ptr<MetricsEndpoint> endpoint = EndpointCountingThree();
    ASSERT_NE(endpoint, nullptr);
    port = endpoint->port();
  }
  absl::StatusOr<MetricsScrape> scrape = ScrapeMetrics("127.0.0.1", port);
  ASSERT_FALSE(scrape.ok());
  EXPECT_TRUE(absl::IsUnavailable(scrape.status())) << scrape.status();
  EXPECT_THAT(std::string(scrape.status().message()), HasSubstr(absl::StrCat("127.0.0.1:", port)));
}

}  // namespace
}  // namespace mobilenet
