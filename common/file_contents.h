// Whole-file reads and writes with errors that name the file.
#ifndef MOBILENET_COMMON_FILE_CONTENTS_H_
#define MOBILENET_COMMON_FILE_CONTENTS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mobilenet {

// The bytes of `path`. NotFound if it does not exist, PermissionDenied if it may not be
// read, FailedPrecondition if it cannot be opened otherwise (e.g. a folder), DataLoss for a
// read error; every message starts with the path.
absl::StatusOr<std::string> ReadFileContents(const std::string& path);

// Creates or replaces `path` with `contents` (not atomically: a reader may see a partial
// file). Errors as ReadFileContents, plus DataLoss if a write or the close fails.
absl::Status WriteFileContents(const std::string& path, absl::string_view contents);

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_FILE_CONTENTS_H_
