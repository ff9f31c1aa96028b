#include "security/token_file.h"

#include <openssl/crypto.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace mobilenet {
namespace {

constexpr size_t kMinSecretLength = 32;

bool WellFormedSecret(absl::string_view secret) {
  if (secret.size() < kMinSecretLength) return false;
  for (char c : secret) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

// Nanoseconds of the file's last modification, or -1.
int64_t ModifiedNanos(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

}  // namespace

absl::StatusOr<std::vector<TokenEntry>> ReadTokenFile(const std::string& path) {
  std::ifstream file(path);
  if (!file.good()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot read the token file: ", std::strerror(errno)));
  }
  std::vector<TokenEntry> entries;
  std::set<std::string> names, secrets;
  std::string line;
  for (int number = 1; std::getline(file, line); ++number) {
    absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || text[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(text, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    const std::string where = absl::StrCat(path, " line ", number);
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected \"<caller name> <secret>\""));
    }
    absl::StatusOr<Caller> caller = ParseCallerName(fields[0]);
    if (!caller.ok())
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", caller.status().message()));
    if (!WellFormedSecret(fields[1])) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": the secret must be at least ", kMinSecretLength,
                       " characters of A-Z, a-z, 0-9, '_' and '-' (e.g. openssl rand -hex 32)"));
    }
    if (!names.insert(std::string(fields[0])).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", fields[0], " is listed twice"));
    }
    if (!secrets.insert(std::string(fields[1])).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": the secret of ", fields[0], " is another caller's too"));
    }
    entries.push_back({*caller, std::string(fields[1])});
  }
  if (entries.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no \"<caller name> <secret>\" line"));
  }
  return entries;
}

absl::StatusOr<std::string> ClientAuthorization(const std::string& path) {
  absl::StatusOr<std::vector<TokenEntry>> entries = ReadTokenFile(path);
  if (!entries.ok()) return entries.status();
  return absl::StrCat("Bearer ", entries->front().secret);
}

absl::StatusOr<std::unique_ptr<TokenTable>> TokenTable::Load(const std::string& path,
                                                             absl::Duration recheck) {
  std::unique_ptr<TokenTable> table(new TokenTable(path, recheck));
  absl::Status loaded = table->Reload();
  if (!loaded.ok()) return loaded;
  return table;
}

absl::Status TokenTable::Reload() {
  const int64_t modified = ModifiedNanos(path_);
  absl::StatusOr<std::vector<TokenEntry>> entries = ReadTokenFile(path_);
  absl::MutexLock lock(&mu_);
  checked_ = absl::Now();
  if (!entries.ok()) return entries.status();
  entries_ = *std::move(entries);
  modified_ns_ = modified;
  return absl::OkStatus();
}

void TokenTable::MaybeReload() {
  {
    absl::MutexLock lock(&mu_);
    if (absl::Now() - checked_ < recheck_) return;
    checked_ = absl::Now();
    if (ModifiedNanos(path_) == modified_ns_) return;
  }
  Reload().IgnoreError();  // a broken file keeps the last good table
}

std::optional<Caller> TokenTable::Find(absl::string_view presented) {
  MaybeReload();
  absl::MutexLock lock(&mu_);
  std::optional<Caller> found;
  // Every entry is compared, each in constant time for equal lengths (CRYPTO_memcmp); a
  // length mismatch is decided by the length alone, which reveals nothing of the secret.
  for (const TokenEntry& entry : entries_) {
    const bool same = presented.size() == entry.secret.size() &&
                      CRYPTO_memcmp(presented.data(), entry.secret.data(), presented.size()) == 0;
    if (same) found = entry.caller;
  }
  return found;
}

}  // namespace mobilenet
