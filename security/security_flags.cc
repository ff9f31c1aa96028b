#include "security/security_flags.h"

#include "absl/flags/flag.h"
#include "absl/strings/match.h"

ABSL_FLAG(std::string, tls_cert_file, "",
          "Transport security: this process's PEM certificate, signed by the cluster's CA; its "
          "DNS name says who it is (ps-<i>, worker-<i>, monitor; deploy/make_certs.sh makes "
          "them). With --tls_key_file and --tls_ca_file: mutual TLS, the files re-read when "
          "they change.");
ABSL_FLAG(std::string, tls_key_file, "", "Transport security: the PEM key of --tls_cert_file.");
ABSL_FLAG(std::string, tls_ca_file, "",
          "Transport security: the PEM certificate of the CA that signs the cluster's "
          "certificates; peers are verified against it.");
ABSL_FLAG(std::string, auth_token_file, "",
          "Transport security: bearer tokens, as an alternative or an addition to TLS. A file "
          "of lines \"<caller name> <secret>\": a client sends its line's secret as "
          "\"authorization: Bearer\"; a parameter server accepts every line's (the line says "
          "who the caller is).");
ABSL_FLAG(bool, insecure, false,
          "mobilenet-ps: listen beyond loopback without TLS or tokens, on purpose (anyone who "
          "reaches the port can then read the weights, push, and end the training; the "
          "server warns at start and in its status).");

namespace mobilenet {

bool IsSecurityFlagsFile(absl::string_view path) {
  return absl::EndsWith(path, "/security_flags.cc");
}

TransportSecurity TransportSecurityFromFlags() {
  TransportSecurity security;
  security.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  security.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  security.tls_ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  security.auth_token_file = absl::GetFlag(FLAGS_auth_token_file);
  security.insecure = absl::GetFlag(FLAGS_insecure);
  return security;
}

}  // namespace mobilenet
