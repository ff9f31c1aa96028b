#include "metrics/metrics_scraper.h"

#include <civetweb.h>

#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace mobilenet {
namespace {

struct ConnectionCloser {
  void operator()(mg_connection* connection) const { mg_close_connection(connection); }
};

// civetweb asks for one initialization per process before its client is used. It is
// never undone: a MetricsEndpoint of this process may still be serving.
void InitializeCivetwebOnce() {
  static const unsigned initialized = mg_init_library(0);
  (void)initialized;
}

}  // namespace

absl::StatusOr<MetricsScrape> ScrapeMetrics(absl::string_view host, int port,
                                            const MetricsScrapeOptions& options) {
  InitializeCivetwebOnce();
  const std::string address = absl::StrCat(host, ":", port);
  const std::string host_string(host);
  char error[256] = "";
  std::unique_ptr<mg_connection, ConnectionCloser> connection(
      mg_connect_client(host_string.c_str(), port, /*use_ssl=*/0, error, sizeof(error)));
  if (connection == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("scraping http://", address, "/metrics: cannot connect: ", error));
  }
  const std::string request =
      absl::StrCat("GET /metrics HTTP/1.0\r\nHost: ", address, "\r\n",
                   options.accept_gzip ? "Accept-Encoding: gzip\r\n" : "", "\r\n");
  if (mg_write(connection.get(), request.data(), request.size()) !=
      static_cast<int>(request.size())) {
    return absl::UnavailableError(
        absl::StrCat("scraping http://", address, "/metrics: cannot send the request"));
  }
  const int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(options.timeout));
  if (mg_get_response(connection.get(), error, sizeof(error), timeout_ms) < 0) {
    return absl::UnavailableError(
        absl::StrCat("scraping http://", address, "/metrics: no response: ", error));
  }
  const mg_response_info* info = mg_get_response_info(connection.get());
  if (info == nullptr || info->status_code != 200) {
    return absl::UnavailableError(
        absl::StrCat("scraping http://", address, "/metrics: HTTP status ",
                     info == nullptr ? -1 : info->status_code, " (200 expected)"));
  }
  MetricsScrape scrape;
  for (int i = 0; i < info->num_headers; ++i) {
    if (absl::EqualsIgnoreCase(info->http_headers[i].name, "Content-Encoding") &&
        absl::StrContains(absl::AsciiStrToLower(info->http_headers[i].value), "gzip")) {
      scrape.gzip = true;
    }
  }
  char buffer[16384];
  int n;
  while ((n = mg_read(connection.get(), buffer, sizeof(buffer))) > 0) scrape.body.append(buffer, n);
  if (n < 0) {
    return absl::UnavailableError(
        absl::StrCat("scraping http://", address, "/metrics: the body was cut short"));
  }
  return scrape;
}

}  // namespace mobilenet
