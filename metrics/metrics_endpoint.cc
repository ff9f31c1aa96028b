#include "metrics/metrics_endpoint.h"

#include <algorithm>
#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace mobilenet {

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(absl::string_view address) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == absl::string_view::npos || colon == 0 ||
      !std::all_of(address.begin() + colon + 1, address.end(),
                   [](char c) { return absl::ascii_isdigit(c); }) ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("metrics address \"", address,
                                                   "\": expected host:port (e.g. 127.0.0.1:9100)"));
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    // One thread: scrapes are rare and each is answered quickly.
    exposer = std::make_unique<prometheus::Exposer>(std::string(address), /*num_threads=*/1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("could not serve metrics on ", address,
                                               " (address in use, or not an address of this "
                                               "host?): ",
                                               e.what()));
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty() || ports.front() <= 0) {
    return absl::UnavailableError(absl::StrCat("could not serve metrics on ", address));
  }
  return std::unique_ptr<MetricsEndpoint>(new MetricsEndpoint(std::move(exposer), ports.front()));
}

MetricsEndpoint::MetricsEndpoint(std::unique_ptr<prometheus::Exposer> exposer, int port)
    : registry_(std::make_shared<prometheus::Registry>()),
      exposer_(std::move(exposer)),
      port_(port) {
  exposer_->RegisterCollectable(registry_);
}

MetricsEndpoint::~MetricsEndpoint() = default;

void MetricsEndpoint::Register(const std::weak_ptr<prometheus::Collectable>& collectable) {
  exposer_->RegisterCollectable(collectable);
}

}  // namespace mobilenet
