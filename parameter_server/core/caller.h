// Who sent a request to a parameter server, as the transport established it (from a TLS
// client certificate or a bearer token, see security/caller_authentication.h), and what
// each kind of caller may do. The names are those of certificates and token files:
//   "worker-<i>"  worker i of the cluster; worker-0 is the chief
//   "monitor"     a tool (mobilenet-ctl status, eval, export): reads, changes nothing
//   "ps-<i>"      parameter server i (the name clients check the server against)
// With transport security off (loopback, or --insecure) every caller is trusted.
#ifndef MOBILENET_PARAMETER_SERVER_CORE_CALLER_H_
#define MOBILENET_PARAMETER_SERVER_CORE_CALLER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mobilenet {

enum class CallerRole {
  kTrusted,          // transport security is off: the caller may do anything
  kWorker,           // may Pull, and Push and Finish as itself; the chief also more
  kMonitor,          // may GetStatus and Pull
  kParameterServer,  // may GetStatus
};

struct Caller {
  CallerRole role = CallerRole::kTrusted;
  int32_t index = -1;  // the worker's or parameter server's task index

  static Caller Trusted() { return {}; }
  static Caller Worker(int32_t index) { return {CallerRole::kWorker, index}; }
  static Caller Monitor() { return {CallerRole::kMonitor, -1}; }
  static Caller ParameterServer(int32_t index) { return {CallerRole::kParameterServer, index}; }

  bool is_chief() const { return role == CallerRole::kWorker && index == 0; }
  // "worker-3", "monitor", "ps-1", or "a trusted caller".
  std::string name() const;
};

// The caller a certificate or token name denotes ("worker-<i>", "monitor", "ps-<i>", i a
// decimal without sign or leading zeros). InvalidArgument quoting the name otherwise.
absl::StatusOr<Caller> ParseCallerName(absl::string_view name);

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CORE_CALLER_H_
