// How the processes of a cluster authenticate each other over gRPC: mutual TLS with
// certificates signed by the cluster's CA (re-read when the files change, so they can be
// rotated without a restart), bearer tokens (token_file.h), or both. Every binary that
// speaks gRPC takes the same settings (security_flags.h).
//
// Certificate names: a parameter server's certificate carries the DNS name "ps-<i>"
// (clients check the server they reach against it, whatever its address), a worker's
// "worker-<i>", a tool's "monitor" (see parameter_server/core/caller.h);
// deploy/make_certs.sh makes them.
#ifndef MOBILENET_SECURITY_TRANSPORT_SECURITY_H_
#define MOBILENET_SECURITY_TRANSPORT_SECURITY_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace mobilenet {

struct TransportSecurity {
  // PEM files: this process's certificate and key, and the CA that signs the cluster's.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_ca_file;
  // Lines "<caller name> <secret>" (token_file.h): a client sends its line's secret, a
  // server accepts every line's.
  std::string auth_token_file;
  // A server may listen beyond loopback without TLS or tokens (it warns).
  bool insecure = false;

  bool tls() const { return !tls_cert_file.empty(); }
  bool tokens() const { return !auth_token_file.empty(); }
  bool enabled() const { return tls() || tokens(); }
  // "mutual TLS", "bearer tokens", "mutual TLS and bearer tokens" or "none".
  std::string Describe() const;
};

// Seconds between checks of the certificate files for changes.
inline constexpr unsigned kCertificateRefreshSeconds = 5;

// InvalidArgument naming the setting: some but not all three TLS files given, or a given
// file missing or unreadable.
absl::Status CheckTransportSecurity(const TransportSecurity& security);

// True for "127.x.x.x:port", "[::1]:port" and "localhost:port".
bool IsLoopbackAddress(absl::string_view address);

// OK when a server may listen on `address`: a loopback address, or transport security
// enabled, or security.insecure. Otherwise FailedPrecondition saying how to make
// certificates (deploy/make_certs.sh) or to pass --insecure deliberately.
absl::Status CheckListeningAllowed(absl::string_view address, const TransportSecurity& security);

// A server's credentials: TLS with this server's certificate, asking clients for theirs
// and verifying any they present against the CA (whether a caller must present one is
// decided per call, caller_authentication.h), re-read every kCertificateRefreshSeconds;
// insecure credentials when TLS is off. Call CheckTransportSecurity first.
std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(const TransportSecurity& security);

// A client's channel credentials: TLS presenting this process's certificate and verifying
// the server's against the CA (and its name, SetExpectedServerName), re-read every
// kCertificateRefreshSeconds; insecure credentials when TLS is off.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsFor(const TransportSecurity& security);

// With TLS, makes a channel built with `args` check that the server's certificate names
// `server_name` (e.g. "ps-1") instead of its address; nothing without TLS.
void SetExpectedServerName(const TransportSecurity& security, const std::string& server_name,
                           grpc::ChannelArguments& args);

}  // namespace mobilenet

#endif  // MOBILENET_SECURITY_TRANSPORT_SECURITY_H_
