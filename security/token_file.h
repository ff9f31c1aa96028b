// Bearer-token files. Each line is "<caller name> <secret>" (caller names as in
// parameter_server/core/caller.h; secrets of 32 or more characters of [A-Za-z0-9_-]);
// '#' starts a comment. A client's file holds its own line and it sends that secret as
// "authorization: Bearer <secret>"; a server's file holds every caller's line, so which
// secret a caller presents says who it is. deploy/make_certs.sh writes both kinds.
#ifndef MOBILENET_SECURITY_TOKEN_FILE_H_
#define MOBILENET_SECURITY_TOKEN_FILE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "parameter_server/core/caller.h"

namespace mobilenet {

struct TokenEntry {
  Caller caller;
  std::string secret;
};

// The entries of a token file. InvalidArgument naming the file and line (never the
// secret) for a malformed line, an unknown caller name, a short or ill-formed secret, a
// secret or a name listed twice, or no entry at all; the errno text for an unreadable
// file.
absl::StatusOr<std::vector<TokenEntry>> ReadTokenFile(const std::string& path);

// The metadata value a client sends: "Bearer <secret>" of the file's first entry.
absl::StatusOr<std::string> ClientAuthorization(const std::string& path);

// A server's accepted tokens, re-read when the file changes (checked at most every
// `recheck`), so tokens can be rotated without a restart; a file that turns unreadable or
// malformed keeps the last good table (the error is returned by Reload). Thread-safe.
class TokenTable {
 public:
  static absl::StatusOr<std::unique_ptr<TokenTable>> Load(
      const std::string& path, absl::Duration recheck = absl::Seconds(5));

  // The caller whose secret `presented` is, comparing with every entry in constant time
  // (no early exit on a mismatch), or nullopt.
  std::optional<Caller> Find(absl::string_view presented);

  // Re-reads the file now; the table is kept on error.
  absl::Status Reload();

 private:
  TokenTable(std::string path, absl::Duration recheck)
      : path_(std::move(path)), recheck_(recheck) {}
  void MaybeReload() ABSL_LOCKS_EXCLUDED(mu_);

  const std::string path_;
  const absl::Duration recheck_;
  absl::Mutex mu_;
  std::vector<TokenEntry> entries_ ABSL_GUARDED_BY(mu_);
  absl::Time checked_ ABSL_GUARDED_BY(mu_);
  int64_t modified_ns_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace mobilenet

#endif  // MOBILENET_SECURITY_TOKEN_FILE_H_
