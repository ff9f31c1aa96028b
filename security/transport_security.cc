#include "security/transport_security.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <fstream>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace mobilenet {
namespace {

absl::Status CheckReadable(absl::string_view flag, const std::string& path) {
  std::ifstream file(path);
  if (!file.good()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, "=", path, ": cannot be read (missing, or no permission)"));
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::experimental::FileWatcherCertificateProvider> WatchFiles(
    const TransportSecurity& security) {
  return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      security.tls_key_file, security.tls_cert_file, security.tls_ca_file,
      kCertificateRefreshSeconds);
}

}  // namespace

std::string TransportSecurity::Describe() const {
  if (tls() && tokens()) return "mutual TLS and bearer tokens";
  if (tls()) return "mutual TLS";
  if (tokens()) return "bearer tokens";
  return "none";
}

absl::Status CheckTransportSecurity(const TransportSecurity& security) {
  const int given = !security.tls_cert_file.empty() + !security.tls_key_file.empty() +
                    !security.tls_ca_file.empty();
  if (given != 0 && given != 3) {
    return absl::InvalidArgumentError(
        "TLS needs all three of --tls_cert_file, --tls_key_file and --tls_ca_file");
  }
  for (const auto& [flag, path] : std::vector<std::pair<const char*, const std::string*>>{
           {"--tls_cert_file", &security.tls_cert_file},
           {"--tls_key_file", &security.tls_key_file},
           {"--tls_ca_file", &security.tls_ca_file},
           {"--auth_token_file", &security.auth_token_file}}) {
    if (path->empty()) continue;
    absl::Status readable = CheckReadable(flag, *path);
    if (!readable.ok()) return readable;
  }
  return absl::OkStatus();
}

bool IsLoopbackAddress(absl::string_view address) {
  return absl::StartsWith(address, "127.") || absl::StartsWith(address, "[::1]:") ||
         absl::StartsWith(address, "localhost:");
}

absl::Status CheckListeningAllowed(absl::string_view address, const TransportSecurity& security) {
  if (IsLoopbackAddress(address) || security.enabled() || security.insecure) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "refusing to listen on ", address,
      " without transport security: anyone who reaches that address could read the weights, "
      "push gradients and end the training. Make certificates with `deploy/make_certs.sh "
      "DIR NUM_PS NUM_WORKERS` and pass --tls_cert_file, --tls_key_file and --tls_ca_file "
      "(or an --auth_token_file), listen on a loopback address, or pass --insecure to run "
      "without on purpose"));
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(const TransportSecurity& security) {
  if (!security.tls()) return grpc::InsecureServerCredentials();
  grpc::experimental::TlsServerCredentialsOptions options(WatchFiles(security));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  // Verify every certificate presented; whether one must be presented is decided per call
  // (a token-only caller, a health check), see caller_authentication.h.
  options.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsFor(const TransportSecurity& security) {
  if (!security.tls()) return grpc::InsecureChannelCredentials();
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(WatchFiles(security));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  return grpc::experimental::TlsCredentials(options);
}

void SetExpectedServerName(const TransportSecurity& security, const std::string& server_name,
                           grpc::ChannelArguments& args) {
  if (security.tls()) args.SetSslTargetNameOverride(server_name);
}

}  // namespace mobilenet
