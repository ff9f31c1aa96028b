#include "parameter_server/shard_checkpointer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status_macros.h"

namespace mobilenet {

std::string ShardCheckpointPrefix(int task_index, int num_ps) {
  return absl::StrCat("ps-", task_index, "-of-", num_ps);
}

ShardCheckpointer::ShardCheckpointer(ParameterShard* shard, ShardCheckpointCodec codec,
                                     std::string directory, std::string prefix, int keep_last)
    : shard_(shard),
      codec_(std::move(codec)),
      series_(std::move(directory), std::move(prefix), keep_last) {
  MOBILENET_CHECK(shard_ != nullptr);
  MOBILENET_CHECK(codec_.encode && codec_.decode);
}

ShardCheckpointer::~ShardCheckpointer() { StopPeriodic(); }

absl::StatusOr<RestoredShardCheckpoint> ShardCheckpointer::Restore() {
  absl::MutexLock lock(&save_mu_);
  ASSIGN_OR_RETURN(RestoredCheckpoint restored, series_.RestoreLatest());
  ASSIGN_OR_RETURN(ShardState state, codec_.decode(restored.checkpoint, restored.path));
  absl::Status status = shard_->RestoreState(state);
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat(restored.path, ": ", status.message()));
  }
  has_last_ = true;
  last_ = {state.version, restored.path, absl::Now(), /*written=*/false};
  RestoredShardCheckpoint result;
  result.step = state.version;
  result.examples_seen = state.examples_seen;
  result.path = restored.path;
  result.skipped = std::move(restored.skipped);
  return result;
}

absl::StatusOr<SavedShardCheckpoint> ShardCheckpointer::Save(bool force) {
  absl::MutexLock lock(&save_mu_);
  // Cheap check first: an idle shard is not exported again.
  auto unchanged = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(save_mu_) {
    SavedShardCheckpoint same = last_;
    same.written = false;
    return same;
  };
  if (!force && has_last_ && shard_->status().version == last_.step) return unchanged();
  const ShardState state = shard_->ExportState();
  if (!force && has_last_ && state.version == last_.step) return unchanged();
  ASSIGN_OR_RETURN(std::string path, series_.Save(state.version, codec_.encode(state)));
  has_last_ = true;
  last_ = {state.version, std::move(path), absl::Now(), /*written=*/true};
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
