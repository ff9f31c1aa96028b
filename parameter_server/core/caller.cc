#include "parameter_server/core/caller.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace mobilenet {
namespace {

// The index of "<prefix><digits>", or -1.
int32_t IndexAfter(absl::string_view name, absl::string_view prefix) {
  if (!absl::ConsumePrefix(&name, prefix) || name.empty() || name.size() > 9) return -1;
  if (name.size() > 1 && name[0] == '0') return -1;
  for (char c : name) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return -1;
  }
  int32_t index;
  return absl::SimpleAtoi(name, &index) ? index : -1;
}

}  // namespace

std::string Caller::name() const {
  switch (role) {
    case CallerRole::kTrusted:
      return "a trusted caller";
    case CallerRole::kWorker:
      return absl::StrCat("worker-", index);
    case CallerRole::kMonitor:
      return "monitor";
    case CallerRole::kParameterServer:
      return absl::StrCat("ps-", index);
  }
  return "unknown";
}

absl::StatusOr<Caller> ParseCallerName(absl::string_view name) {
  if (name == "monitor") return Caller::Monitor();
  if (const int32_t worker = IndexAfter(name, "worker-"); worker >= 0)
    return Caller::Worker(worker);
  if (const int32_t ps = IndexAfter(name, "ps-"); ps >= 0) return Caller::ParameterServer(ps);
  return absl::InvalidArgumentError(
      absl::StrCat("\"", absl::CHexEscape(name.substr(0, 64)),
                   "\" is not a caller name; expected worker-<i>, monitor or ps-<i>"));
}

}  // namespace mobilenet
