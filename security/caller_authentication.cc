#include "security/caller_authentication.h"

#include <grpc/grpc_security_constants.h>

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace mobilenet {
namespace {

absl::Status Unauthenticated(absl::string_view why) {
  return absl::UnauthenticatedError(std::string(why));
}

// The caller the first of `values` that is a caller name denotes, or nullopt.
std::optional<Caller> FirstCaller(const std::vector<grpc::string_ref>& values) {
  for (const grpc::string_ref& value : values) {
    absl::StatusOr<Caller> caller = ParseCallerName(absl::string_view(value.data(), value.size()));
    if (caller.ok()) return *caller;
  }
  return std::nullopt;
}

bool SameCaller(const Caller& a, const Caller& b) { return a.role == b.role && a.index == b.index; }

}  // namespace

absl::StatusOr<std::unique_ptr<CallerAuthenticator>> CallerAuthenticator::Create(
    const TransportSecurity& security) {
  std::unique_ptr<TokenTable> tokens;
  if (security.tokens()) {
    absl::StatusOr<std::unique_ptr<TokenTable>> loaded = TokenTable::Load(security.auth_token_file);
    if (!loaded.ok()) return loaded.status();
    tokens = std::move(*loaded);
  }
  return std::unique_ptr<CallerAuthenticator>(
      new CallerAuthenticator(security.tls(), std::move(tokens)));
}

absl::StatusOr<Caller> CallerAuthenticator::Authenticate(
    const grpc::ServerContextBase& context) const {
  if (!enabled()) return Caller::Trusted();
  std::optional<Caller> from_certificate;
  if (tls_) {
    const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
    if (auth == nullptr || !auth->IsPeerAuthenticated()) {
      return Unauthenticated(
          "no client certificate: this server takes calls only from callers with a "
          "certificate signed by the cluster's CA (--tls_cert_file, --tls_key_file, "
          "--tls_ca_file)");
    }
    from_certificate = FirstCaller(auth->FindPropertyValues(GRPC_X509_SAN_PROPERTY_NAME));
    if (!from_certificate) {
      from_certificate = FirstCaller(auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME));
    }
    if (!from_certificate) {
      return Unauthenticated(
          "the client certificate names no caller: expected a subject alternative name "
          "worker-<i>, monitor or ps-<i> (deploy/make_certs.sh)");
    }
  }
  if (tokens_ == nullptr) return *from_certificate;
  const auto& metadata = context.client_metadata();
  const auto header = metadata.find("authorization");
  if (header == metadata.end()) {
    return Unauthenticated("no \"authorization: Bearer <token>\" metadata (--auth_token_file)");
  }
  absl::string_view value(header->second.data(), header->second.size());
  if (!absl::ConsumePrefix(&value, "Bearer ")) {
    return Unauthenticated("the authorization metadata is not \"Bearer <token>\"");
  }
  const std::optional<Caller> from_token = tokens_->Find(value);
  if (!from_token) return Unauthenticated("the bearer token is not one this server accepts");
  if (from_certificate && !SameCaller(*from_certificate, *from_token)) {
    return Unauthenticated(absl::StrCat("the client certificate names ", from_certificate->name(),
                                        " but the bearer token ", from_token->name()));
  }
  return *from_token;
}

}  // namespace mobilenet
