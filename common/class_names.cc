#include "common/class_names.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace mobilenet {
namespace {

// The length of the valid UTF-8 sequence starting at text[i], or 0 when there is none
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
int Utf8SequenceLength(absl::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t lead = byte(i);
  int length;
  uint32_t code_point;
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    code_point = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    code_point = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    code_point = lead & 0x07;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (int k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(i + k) & 0x3F);
  }
  if ((length == 3 && code_point < 0x800) || (length == 4 && code_point < 0x10000) ||
      (code_point >= 0xD800 && code_point <= 0xDFFF) || code_point > 0x10FFFF) {
    return 0;
  }
  return length;
}

// Empty, or what is wrong with `name`.
std::string NameProblem(absl::string_view name) {
  if (name.empty()) return "is empty";
  if (name.size() > static_cast<size_t>(kMaxClassNameBytes)) {
    return absl::StrFormat("has %d bytes, at most %d allowed", name.size(), kMaxClassNameBytes);
  }
  for (size_t i = 0; i < name.size();) {
    const int length = Utf8SequenceLength(name, i);
    if (length == 0) return absl::StrFormat("is not valid UTF-8 (at byte %d)", i);
    const uint8_t c = static_cast<uint8_t>(name[i]);
    if (length == 1 && (c < 0x20 || c == 0x7F)) {
      return absl::StrFormat("holds control character 0x%02x (at byte %d)", c, i);
    }
    // C1 controls U+0080..U+009F: 0xC2 0x80..0x9F.
    if (length == 2 && c == 0xC2 && static_cast<uint8_t>(name[i + 1]) < 0xA0) {
      return absl::StrFormat("holds control character U+%04X (at byte %d)",
                             static_cast<uint8_t>(name[i + 1]), i);
    }
    i += length;
  }
  return "";
}

}  // namespace

absl::Status CheckClassNames(absl::Span<const std::string> names, int num_classes) {
  if (names.empty()) return absl::OkStatus();
  if (num_classes >= 0 && static_cast<int64_t>(names.size()) != num_classes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d class names for a model of %d classes", names.size(), num_classes));
  }
  int64_t total = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string problem = NameProblem(names[i]);
    if (!problem.empty()) {
      // Not the name itself: it may be binary or huge.
      return absl::InvalidArgumentError(absl::StrFormat("class name %d %s", i, problem));
    }
    total += static_cast<int64_t>(names[i].size());
  }
  if (total > kMaxClassNamesTotalBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "class names hold %d bytes together, at most %d allowed", total, kMaxClassNamesTotalBytes));
  }
  return absl::OkStatus();
}

std::string DescribeClassNames(absl::Span<const std::string> names) {
  constexpr size_t kShown = 5;
  if (names.size() <= kShown) return absl::StrCat("[", absl::StrJoin(names, ", "), "]");
  return absl::StrCat("[", absl::StrJoin(names.subspan(0, kShown), ", "), ", ... (", names.size(),
                      " names)]");
}

std::string FormatClassNames(absl::Span<const std::string> names) {
  return absl::StrJoin(names, "\n");
}

std::vector<std::string> ParseClassNames(absl::string_view text) {
  if (text.empty()) return {};
  return absl::StrSplit(text, '\n');
}

}  // namespace mobilenet
