#include "common/checkpoint_series.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/check.h"
#include "common/status_macros.h"

namespace mobilenet {
namespace {

namespace fs = std::filesystem;

constexpr absl::string_view kTempMarker = ".tmp.";

absl::Status FilesystemError(const std::error_code& error, const std::string& path,
                             absl::string_view what) {
  return absl::Status(absl::ErrnoToStatusCode(error.value()),
                      absl::StrCat(path, ": ", what, ": ", error.message()));
}

// The step of "<prefix>-<digits>.mnck", or -1 for any other name.
int64_t StepOfFileName(absl::string_view name, absl::string_view prefix) {
  if (!absl::ConsumePrefix(&name, prefix) || !absl::ConsumePrefix(&name, "-") ||
      !absl::ConsumeSuffix(&name, kCheckpointExtension)) {
    return -1;
  }
  if (name.empty() || name.size() > 18) return -1;
  for (char c : name) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return -1;
  }
  int64_t step;
  if (!absl::SimpleAtoi(name, &step)) return -1;
  return step;
}

// True for ".<prefix>-<step>.mnck.tmp.XXXXXX", what WriteCheckpoint leaves behind when
// interrupted.
bool IsTempFileOfSeries(absl::string_view name, absl::string_view prefix) {
  if (!absl::ConsumePrefix(&name, ".")) return false;
  const size_t marker = name.rfind(kTempMarker);
  if (marker == absl::string_view::npos) return false;
  return StepOfFileName(name.substr(0, marker), prefix) >= 0;
}

}  // namespace

CheckpointSeries::CheckpointSeries(std::string directory, std::string prefix, int keep_last)
    : directory_(std::move(directory)), prefix_(std::move(prefix)), keep_last_(keep_last) {
  MOBILENET_CHECK(!prefix_.empty());
}

std::string CheckpointSeries::PathForStep(int64_t step) const {
  return (fs::path(directory_) / absl::StrCat(prefix_, "-", step, kCheckpointExtension)).string();
}

absl::StatusOr<std::vector<CheckpointFile>> CheckpointSeries::List() const {
  std::vector<CheckpointFile> files;
  std::error_code error;
  fs::directory_iterator it(directory_, error);
  if (error == std::errc::no_such_file_or_directory) return files;
  if (error) return FilesystemError(error, directory_, "listing checkpoints");
  for (; it != fs::directory_iterator(); it.increment(error)) {
    const int64_t step = StepOfFileName(it->path().filename().string(), prefix_);
    if (step >= 0) files.push_back({step, it->path().string()});
  }
  if (error) return FilesystemError(error, directory_, "listing checkpoints");
  std::sort(files.begin(), files.end(),
            [](const CheckpointFile& a, const CheckpointFile& b) { return a.step < b.step; });
  return files;
}

absl::StatusOr<std::string> CheckpointSeries::Save(int64_t step,
                                                   const Checkpoint& checkpoint) const {
  if (step < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint step ", step, ", a step >= 0 expected"));
  }
  std::error_code error;
  fs::create_directories(directory_, error);
  if (error) return FilesystemError(error, directory_, "creating checkpoint directory");
  const std::string path = PathForStep(step);
  RETURN_IF_ERROR(WriteCheckpoint(path, checkpoint));
  RETURN_IF_ERROR(Prune());
  return path;
}

absl::Status CheckpointSeries::Prune() const {
  ASSIGN_OR_RETURN(std::vector<CheckpointFile> files, List());
  std::error_code error;
  if (keep_last_ > 0 && files.size() > static_cast<size_t>(keep_last_)) {
    for (size_t i = 0; i + keep_last_ < files.size(); ++i) {
      if (!fs::remove(files[i].path, error) && error) {
        return FilesystemError(error, files[i].path, "deleting old checkpoint");
      }
    }
  }
  fs::directory_iterator it(directory_, error);
  if (error == std::errc::no_such_file_or_directory) return absl::OkStatus();
  if (error) return FilesystemError(error, directory_, "listing checkpoints");
  std::vector<fs::path> temp_files;
  for (; it != fs::directory_iterator(); it.increment(error)) {
    if (IsTempFileOfSeries(it->path().filename().string(), prefix_)) {
      temp_files.push_back(it->path());
    }
  }
  for (const fs::path& temp : temp_files) {
    if (!fs::remove(temp, error) && error) {
      return FilesystemError(error, temp.string(), "deleting leftover temporary file");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<RestoredCheckpoint> CheckpointSeries::RestoreLatest() const {
  ASSIGN_OR_RETURN(std::vector<CheckpointFile> files, List());
  RestoredCheckpoint restored;
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(it->path);
    if (!checkpoint.ok()) {
      restored.skipped.push_back(std::string(checkpoint.status().message()));
      continue;
    }
    restored.step = it->step;
    restored.path = it->path;
    restored.checkpoint = *std::move(checkpoint);
    return restored;
  }
  std::string message = absl::StrCat("no valid checkpoint \"", prefix_, "-<step>",
                                     kCheckpointExtension, "\" in ", directory_);
  if (!restored.skipped.empty()) {
    absl::StrAppend(&message, " (skipped: ", absl::StrJoin(restored.skipped, "; "), ")");
  }
  return absl::NotFoundError(message);
}

absl::StatusOr<std::string> CheckpointSeries::SetAside(const std::string& path) const {
  std::error_code error;
  std::string target = absl::StrCat(path, kSetAsideSuffix);
  for (int n = 2; fs::exists(target, error); ++n) {
    target = absl::StrCat(path, kSetAsideSuffix, ".", n);
  }
  fs::rename(path, target, error);
  if (error) return FilesystemError(error, path, "setting a refused checkpoint aside");
  return target;
}

absl::StatusOr<std::vector<std::string>> CheckpointSeries::ListSetAside() const {
  std::vector<std::string> names;
  std::error_code error;
  fs::directory_iterator it(directory_, error);
  if (error == std::errc::no_such_file_or_directory) return names;
  if (error) return FilesystemError(error, directory_, "listing checkpoints");
  for (; it != fs::directory_iterator(); it.increment(error)) {
    const std::string name = it->path().filename().string();
    const size_t suffix = name.find(absl::StrCat(kCheckpointExtension, kSetAsideSuffix));
    if (suffix == std::string::npos) continue;
    const std::string checkpoint_name = name.substr(0, suffix + strlen(kCheckpointExtension));
    if (StepOfFileName(checkpoint_name, prefix_) >= 0) names.push_back(it->path().string());
  }
  if (error) return FilesystemError(error, directory_, "listing checkpoints");
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace mobilenet
