// Pieces of JSON text for the tools' --json output.
#ifndef MOBILENET_COMMON_JSON_TEXT_H_
#define MOBILENET_COMMON_JSON_TEXT_H_

#include <string>

#include "absl/strings/string_view.h"

namespace mobilenet {

// `s` as a quoted JSON string: quotes, backslashes and control characters escaped; other
// bytes (UTF-8) unchanged.
std::string JsonString(absl::string_view s);

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_JSON_TEXT_H_
