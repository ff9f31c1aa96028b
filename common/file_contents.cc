#include "common/file_contents.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mobilenet {
namespace {

absl::Status OpenError(const std::string& path, int error) {
  const std::string reason = std::strerror(error);
  if (error == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": ", reason));
  if (error == EACCES) return absl::PermissionDeniedError(absl::StrCat(path, ": ", reason));
  return absl::FailedPreconditionError(absl::StrCat(path, ": cannot open: ", reason));
}

}  // namespace

absl::StatusOr<std::string> ReadFileContents(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return OpenError(path, errno);
  struct stat info;
  if (fstat(fileno(file), &info) == 0 && S_ISDIR(info.st_mode)) {
    std::fclose(file);
    return OpenError(path, EISDIR);
  }
  std::string bytes;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) bytes.append(buffer, n);
  const bool failed = std::ferror(file) != 0;
  const int error = errno;
  std::fclose(file);
  if (failed) {
    return absl::DataLossError(absl::StrCat(path, ": read error: ", std::strerror(error)));
  }
  return bytes;
}

absl::Status WriteFileContents(const std::string& path, absl::string_view contents) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) return OpenError(path, errno);
  const bool written = std::fwrite(contents.data(), 1, contents.size(), file) == contents.size();
  const int write_error = errno;
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) {
    return absl::DataLossError(
        absl::StrCat(path, ": write error: ", std::strerror(written ? errno : write_error)));
  }
  return absl::OkStatus();
}

}  // namespace mobilenet
