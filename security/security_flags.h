// The transport-security flags every binary that speaks gRPC takes (mobilenet-ps,
// mobilenet-worker, mobilenet-ctl, mobilenet-transport-bench), defined once.
#ifndef MOBILENET_SECURITY_SECURITY_FLAGS_H_
#define MOBILENET_SECURITY_SECURITY_FLAGS_H_

#include <string>

#include "absl/flags/declare.h"
#include "absl/strings/string_view.h"
#include "security/transport_security.h"

ABSL_DECLARE_FLAG(std::string, tls_cert_file);
ABSL_DECLARE_FLAG(std::string, tls_key_file);
ABSL_DECLARE_FLAG(std::string, tls_ca_file);
ABSL_DECLARE_FLAG(std::string, auth_token_file);
ABSL_DECLARE_FLAG(bool, insecure);

namespace mobilenet {

// The file defining the flags, for a binary's --help filter.
bool IsSecurityFlagsFile(absl::string_view path);

// The flags as settings (not yet checked: see CheckTransportSecurity).
TransportSecurity TransportSecurityFromFlags();

}  // namespace mobilenet

#endif  // MOBILENET_SECURITY_SECURITY_FLAGS_H_
