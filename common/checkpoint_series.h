// A directory of numbered checkpoints "<prefix>-<step>.mnck": save a new one, keep only the
// newest few, and restore from the newest one that reads back intact. A parameter-server
// shard uses one series per shard (its own prefix or directory).
#ifndef MOBILENET_COMMON_CHECKPOINT_SERIES_H_
#define MOBILENET_COMMON_CHECKPOINT_SERIES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/checkpoint.h"

namespace mobilenet {

inline constexpr char kCheckpointExtension[] = ".mnck";
// Appended to a checkpoint file set aside as refused (CheckpointSeries::SetAside).
inline constexpr char kSetAsideSuffix[] = ".corrupt";

struct CheckpointFile {
  int64_t step = 0;
  std::string path;
};

struct RestoredCheckpoint {
  int64_t step = 0;
  std::string path;
  Checkpoint checkpoint;
  // One line per newer file that was skipped, naming it and why ("...: header checksum
  // mismatch"). The caller decides whether to log them.
  std::vector<std::string> skipped;
};

// Not thread-safe; one writer per series (the owner of the prefix in that directory).
class CheckpointSeries {
 public:
  // keep_last <= 0 keeps every checkpoint. prefix must be non-empty (checked).
  CheckpointSeries(std::string directory, std::string prefix = "ckpt", int keep_last = 5);

  const std::string& directory() const { return directory_; }

  // "<directory>/<prefix>-<step>.mnck".
  std::string PathForStep(int64_t step) const;

  // Checkpoint files of this series, oldest step first. Files of other names (other
  // prefixes, leftover temporary files) are ignored. A missing directory gives an empty
  // list; an unreadable one the errno text naming it.
  absl::StatusOr<std::vector<CheckpointFile>> List() const;

  // Writes `checkpoint` atomically as step `step` (creating the directory if needed), then
  // prunes. Returns the path written. Errors: InvalidArgument for step < 0; those of
  // WriteCheckpoint; those of Prune (the new checkpoint is then already safely written).
  absl::StatusOr<std::string> Save(int64_t step, const Checkpoint& checkpoint) const;

  // Deletes all but the keep_last newest checkpoints of this series, and leftover
  // temporary files of this series from interrupted writes.
  absl::Status Prune() const;

  // Reads the newest checkpoint that verifies, skipping (and noting) corrupt ones; leaves
  // every file as it is (for readers such as mobilenet-ctl).
  // NotFound when the series has no valid checkpoint (the message lists what was skipped).
  absl::StatusOr<RestoredCheckpoint> RestoreLatest() const;

  // Sets a refused checkpoint file of this series aside, never deleting it: renames
  // `path` to "<path>.corrupt" (or "<path>.corrupt.<n>" when that is taken), so that the
  // series, its retention and its restores no longer see it. Returns the new path; the
  // errno text naming the file when it cannot be renamed.
  absl::StatusOr<std::string> SetAside(const std::string& path) const;

  // Files of this series that were set aside, in name order.
  absl::StatusOr<std::vector<std::string>> ListSetAside() const;

 private:
  std::string directory_;
  std::string prefix_;
  int keep_last_;
};

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_CHECKPOINT_SERIES_H_
