// The client side of a scrape, enough for tests and benchmarks: GET /metrics from an
// HTTP endpoint the way a Prometheus server does (optionally asking for a gzip body, as
// Prometheus does), with civetweb's HTTP client (civetweb already serves MetricsEndpoint).
#ifndef MOBILENET_METRICS_METRICS_SCRAPER_H_
#define MOBILENET_METRICS_METRICS_SCRAPER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace mobilenet {

struct MetricsScrapeOptions {
  // Send "Accept-Encoding: gzip" as Prometheus does; the endpoint then compresses.
  bool accept_gzip = false;
  // Longest wait for the response to begin (the connect and the body are not bounded).
  absl::Duration timeout = absl::Seconds(10);
};

struct MetricsScrape {
  std::string body;   // as served: gzip-compressed when `gzip`
  bool gzip = false;  // the response's Content-Encoding was gzip
};

// One plain-HTTP GET of http://`host`:`port`/metrics, on a new connection closed after
// it. Unavailable naming the address when it cannot connect, no response begins within
// the timeout, the status is not 200 (naming it) or the body is cut short. Thread-safe,
// except that the first call initializes civetweb, which must not race a MetricsEndpoint
// being started on another thread: make the first call on the thread that starts the
// endpoints, or after they have started.
absl::StatusOr<MetricsScrape> ScrapeMetrics(absl::string_view host, int port,
                                            const MetricsScrapeOptions& options = {});

}  // namespace mobilenet

#endif  // MOBILENET_METRICS_METRICS_SCRAPER_H_
