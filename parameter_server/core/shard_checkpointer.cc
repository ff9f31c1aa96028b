#include "parameter_server/core/shard_checkpointer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/check.h"
#include "common/status_macros.h"

namespace mobilenet {

std::string ShardCheckpointPrefix(int task_index, int num_ps) {
  return absl::StrCat("ps-", task_index, "-of-", num_ps);
}

ShardCheckpointer::ShardCheckpointer(ParameterServerCore* core, ShardCheckpointCodec codec,
                                     ShardCheckpointerOptions options)
    : core_(core),
      codec_(std::move(codec)),
      options_(std::move(options)),
      series_(options_.directory, options_.prefix, options_.keep_last) {
  MOBILENET_CHECK(core_ != nullptr);
  MOBILENET_CHECK(codec_.encode && codec_.decode);
}

ShardCheckpointer::~ShardCheckpointer() { StopPeriodic(); }

absl::StatusOr<RestoredShardCheckpoint> ShardCheckpointer::Restore() {
  absl::MutexLock lock(&save_mu_);
  ASSIGN_OR_RETURN(std::vector<CheckpointFile> files, series_.List());
  RestoredShardCheckpoint result;
  for (auto file = files.rbegin(); file != files.rend(); ++file) {
    absl::StatusOr<Checkpoint> read = ReadCheckpoint(file->path);
    absl::Status refused;
    if (!read.ok()) {
      // Corrupt or not a checkpoint: the file's fault. A file that vanished needs nothing;
      // anything else (a newer format, no permission) is not for this process to judge.
      if (absl::IsNotFound(read.status())) continue;
      if (!absl::IsDataLoss(read.status()) && !absl::IsInvalidArgument(read.status())) {
        return read.status();
      }
      refused = read.status();
    } else {
      absl::StatusOr<CoreState> state = codec_.decode(*read, file->path);
      if (absl::IsFailedPrecondition(state.status())) return state.status();
      if (state.ok()) {
        refused = core_->RestoreState(*state);  // checks CheckCoreState first
        if (!refused.ok()) {
          refused = absl::Status(refused.code(), absl::StrCat(file->path, ": ", refused.message()));
        }
      } else {
        refused = state.status();
      }
      if (refused.ok()) {
        result.step = state->shard.version;
        result.examples_seen = state->shard.examples_seen;
        result.path = file->path;
        has_last_ = true;
        last_ = {result.step, file->path, absl::Now(), /*written=*/false, absl::ZeroDuration()};
        last_changes_ = core_->changes();
        return result;
      }
    }
    ASSIGN_OR_RETURN(const std::string moved, series_.SetAside(file->path));
    result.set_aside.push_back(
        absl::StrCat(refused.message(), "; set aside as ", moved));
  }
  ASSIGN_OR_RETURN(const std::vector<std::string> earlier, series_.ListSetAside());
  if (earlier.empty() || options_.allow_fresh_start) return result;  // a fresh start
  return absl::FailedPreconditionError(absl::StrCat(
      "no checkpoint of ", options_.prefix, " in ", options_.directory,
      " can be restored, but it held some: ", absl::StrJoin(earlier, ", "),
      result.set_aside.empty() ? "" : absl::StrCat(" (now: ", absl::StrJoin(result.set_aside, "; "), ")"),
      ". They were set aside, not deleted. Starting again from step 0 would lose the "
      "training; to do that deliberately, start with --allow_fresh_start"));
}

absl::StatusOr<SavedShardCheckpoint> ShardCheckpointer::Save(bool force) {
  absl::MutexLock lock(&save_mu_);
  // A shard that did not change (no push, finish or evaluation: the count is read before
  // the export, so a change racing with it is written next time) is not written again.
  const int64_t changes = core_->changes();
  if (!force && has_last_ && changes == last_changes_) {
    SavedShardCheckpoint same = last_;
    same.written = false;
    return same;
  }
  const absl::Time start = absl::Now();
  const CoreState state = core_->ExportState();
  const absl::Status valid = CheckCoreState(state, core_->plan().state_layout());
  if (!valid.ok()) {
    return absl::InternalError(absl::StrCat(
        "refusing to write a checkpoint that would not restore: ", valid.message()));
  }
  ASSIGN_OR_RETURN(std::string path, series_.Save(state.shard.version, codec_.encode(state)));
  has_last_ = true;
  const absl::Time written = absl::Now();
  last_ = {state.shard.version, std::move(path), written, /*written=*/true, written - start};
  last_changes_ = changes;
  return last_;
}

void ShardCheckpointer::StartPeriodic(
    absl::Duration interval,
    std::function<void(const absl::StatusOr<SavedShardCheckpoint>&)> on_save) {
  MOBILENET_CHECK(interval > absl::ZeroDuration());
  absl::MutexLock lock(&thread_mu_);
  MOBILENET_CHECK(!thread_.joinable());
  stop_ = false;
  thread_ = std::thread([this, interval, on_save = std::move(on_save)]() {
    PeriodicLoop(interval, on_save);
  });
}

void ShardCheckpointer::StopPeriodic() {
  std::thread thread;
  {
    absl::MutexLock lock(&thread_mu_);
    stop_ = true;
    thread = std::move(thread_);
  }
  if (thread.joinable()) thread.join();
}

void ShardCheckpointer::PeriodicLoop(
    absl::Duration interval,
    std::function<void(const absl::StatusOr<SavedShardCheckpoint>&)> on_save) {
  absl::Time next = absl::Now() + interval;
  while (true) {
    {
      absl::MutexLock lock(&thread_mu_);
      thread_mu_.AwaitWithDeadline(absl::Condition(&stop_), next);
      if (stop_) return;
    }
    absl::StatusOr<SavedShardCheckpoint> saved = Save();
    if (on_save) on_save(saved);
    next = absl::Now() + interval;
  }
}

}  // namespace mobilenet
