// Who is calling a server: the identity at the edge, established from the transport
// before a request reaches the core (what each caller may then do is checked by the core's
// validation, parameter_server/core/request_validation.h).
//   - TLS on: the caller must present a client certificate signed by the cluster's CA
//     (the TLS handshake verified it); it is the caller its certificate names: the first
//     DNS name among the subject alternative names that is a caller name, else the
//     common name.
//   - tokens on: the caller must send "authorization: Bearer <secret>" with the secret of
//     a line of the server's token file; it is that line's caller. With TLS on as well,
//     certificate and token must name the same caller.
//   - neither: every caller is trusted (a server on loopback, or run with --insecure).
#ifndef MOBILENET_SECURITY_CALLER_AUTHENTICATION_H_
#define MOBILENET_SECURITY_CALLER_AUTHENTICATION_H_

#include <grpcpp/grpcpp.h>

#include <memory>

#include "absl/status/statusor.h"
#include "parameter_server/core/caller.h"
#include "security/token_file.h"
#include "security/transport_security.h"

namespace mobilenet {

// Thread-safe.
class CallerAuthenticator {
 public:
  // Loads the token table when security.tokens(). Errors of TokenTable::Load.
  static absl::StatusOr<std::unique_ptr<CallerAuthenticator>> Create(
      const TransportSecurity& security);

  // The caller of the RPC of `context`, or UNAUTHENTICATED saying what was missing or
  // wrong (it never repeats a presented token).
  absl::StatusOr<Caller> Authenticate(const grpc::ServerContextBase& context) const;

  // Whether callers are identified at all (else every one is trusted).
  bool enabled() const { return tls_ || tokens_ != nullptr; }

 private:
  CallerAuthenticator(bool tls, std::unique_ptr<TokenTable> tokens)
      : tls_(tls), tokens_(std::move(tokens)) {}

  const bool tls_;
  const std::unique_ptr<TokenTable> tokens_;  // null: tokens off
};

}  // namespace mobilenet

#endif  // MOBILENET_SECURITY_CALLER_AUTHENTICATION_H_
