// The names of a model's classes: what the chief reports to the parameter servers, what
// their checkpoints keep (metadata "class_names", one name per line) and what
// mobilenet-ctl predict and the ONNX export show instead of class numbers. Index i names
// class i; an empty list means the names are unknown (e.g. Fashion-MNIST's IDX files).
#ifndef MOBILENET_COMMON_CLASS_NAMES_H_
#define MOBILENET_COMMON_CLASS_NAMES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace mobilenet {

// The checkpoint metadata key and the ONNX metadata_props key holding the names.
inline constexpr char kClassNamesKey[] = "class_names";
// Bytes of one name, and of all names together.
inline constexpr int kMaxClassNameBytes = 256;
inline constexpr int kMaxClassNamesTotalBytes = 256 * 1024;

// OK, or InvalidArgument naming the first problem: a count other than `num_classes`
// (num_classes < 0: any count), a name that is empty, longer than kMaxClassNameBytes, not
// valid UTF-8 or holding a control character (so one per line is unambiguous), or more than
// kMaxClassNamesTotalBytes together. An empty list is valid (unknown names).
absl::Status CheckClassNames(absl::Span<const std::string> names, int num_classes);

// "[a, b, c]" for messages: the first 5 names, then "... (N names)" when there are more,
// so an error naming two lists stays small (a gRPC status travels in trailers).
std::string DescribeClassNames(absl::Span<const std::string> names);

// One name per line, for checkpoint metadata; the reverse of ParseClassNames.
std::string FormatClassNames(absl::Span<const std::string> names);
// Splits `text` at newlines; "" gives no names. Check the result with CheckClassNames.
std::vector<std::string> ParseClassNames(absl::string_view text);

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_CLASS_NAMES_H_
