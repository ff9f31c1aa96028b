// The /metrics endpoint: an HTTP listener (prometheus-cpp's Exposer, civetweb) serving the
// Prometheus text format of one registry and of any other collectables registered with it.
#ifndef MOBILENET_METRICS_METRICS_ENDPOINT_H_
#define MOBILENET_METRICS_METRICS_ENDPOINT_H_

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mobilenet {

// Thread-safe (the registry and the exposer lock themselves).
class MetricsEndpoint {
 public:
  // Listens on `address` ("127.0.0.1:9100", "localhost:9100", "0.0.0.0:9100" only if
  // asked; port 0: any free port, see port()) and serves GET /metrics. InvalidArgument for
  // an address that is not host:port with a numeric port; Unavailable naming the address
  // when it cannot be bound. IPv6 addresses ("[::1]:9100") are Unavailable: the civetweb
  // of Debian 12 does not bind them.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(absl::string_view address);

  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;
  // Stops listening.
  ~MetricsEndpoint();

  // Metrics created here are served; it lives as long as the endpoint.
  prometheus::Registry& registry() { return *registry_; }
  // Also serves what `collectable` collects at each scrape, while it is alive (the
  // endpoint keeps only a weak reference).
  void Register(const std::weak_ptr<prometheus::Collectable>& collectable);
  // The port listened on (the bound one when the address asked for port 0).
  int port() const { return port_; }

 private:
  MetricsEndpoint(std::unique_ptr<prometheus::Exposer> exposer, int port);

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  const int port_;
};

}  // namespace mobilenet

#endif  // MOBILENET_METRICS_METRICS_ENDPOINT_H_
