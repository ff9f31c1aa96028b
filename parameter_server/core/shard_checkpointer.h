// Checkpoints of one parameter server (its shard and ledger, core_state.h): restore the
// newest one that is readable and accepted at start, write one periodically from a
// background thread (only when the shard has changed), and a final one at shutdown. Each
// server is its own series ("ps-<task>-of-<n>-<step>.mnck") in the checkpoint folder, so
// the folder as a whole holds the model (model_checkpoint.h's LoadModel reads the newest
// of every series).
//
// What is written can be read back: the state passes CheckCoreState before it is written
// and again after it is read. A file that is unreadable or refused is set aside
// (renamed "*.corrupt", never deleted) and the next older one is tried; when none is left
// of a series that had files, starting again from step 0 is refused unless asked for.
#ifndef MOBILENET_PARAMETER_SERVER_CORE_SHARD_CHECKPOINTER_H_
#define MOBILENET_PARAMETER_SERVER_CORE_SHARD_CHECKPOINTER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/checkpoint.h"
#include "common/checkpoint_series.h"
#include "parameter_server/core/core_state.h"
#include "parameter_server/core/parameter_server_core.h"

namespace mobilenet {

// "ps-<task_index>-of-<num_ps>": the series prefix of one parameter server's checkpoints.
std::string ShardCheckpointPrefix(int task_index, int num_ps);

// How a server's state is stored in a checkpoint and read back; mobilenet-ps uses
// model_checkpoint.h's ModelShardCheckpointCodec.
struct ShardCheckpointCodec {
  std::function<Checkpoint(const CoreState&)> encode;
  // Errors should name `path`. FailedPrecondition means "a checkpoint of something else"
  // (another model): the restore stops there instead of setting the file aside.
  std::function<absl::StatusOr<CoreState>(const Checkpoint& checkpoint, const std::string& path)>
      decode;
};

struct ShardCheckpointerOptions {
  std::string directory;
  std::string prefix;      // the series, e.g. ShardCheckpointPrefix(task, n)
  int keep_last = 3;       // newest checkpoints kept; <= 0: all
  // Start from step 0 even when every checkpoint of the series was refused and set aside
  // (otherwise Restore refuses, since that would silently lose the training).
  bool allow_fresh_start = false;
};

struct SavedShardCheckpoint {
  int64_t step = 0;  // the shard's version
  std::string path;
  absl::Time time;     // when it was written (or restored)
  bool written = false;  // false: nothing changed since `path`, no file was written
  // Export, check, encode and write of the file `path` (zero for a restored one).
  absl::Duration duration;
};

struct RestoredShardCheckpoint {
  int64_t step = 0;
  int64_t examples_seen = 0;
  std::string path;  // empty: nothing restored, a fresh start
  // One line per newer file refused, naming it, why and where it was set aside.
  std::vector<std::string> set_aside;
};

// Thread-safe.
class ShardCheckpointer {
 public:
  // Checkpoints `core` (not owned; must outlive this object). The codec functions must be
  // set (checked).
  ShardCheckpointer(ParameterServerCore* core, ShardCheckpointCodec codec,
                    ShardCheckpointerOptions options);
  // Stops the periodic thread; writes nothing.
  ~ShardCheckpointer();

  ShardCheckpointer(const ShardCheckpointer&) = delete;
  ShardCheckpointer& operator=(const ShardCheckpointer&) = delete;

  // Restores the newest checkpoint of the series that reads back intact and is accepted
  // (decoded, CheckCoreState, ParameterServerCore::RestoreState), setting every newer one
  // aside. Returns what was restored, or a fresh start (empty path) when the series has
  // no files at all, or only refused ones with allow_fresh_start. Errors, with the core
  // unchanged: FailedPrecondition when every file was refused (they are set aside; the
  // message lists why and how to start over deliberately) or one holds another model;
  // the error of a file that could not be read for a reason not its own (e.g. permission
  // denied) or of a folder that cannot be listed or renamed in.
  absl::StatusOr<RestoredShardCheckpoint> Restore();

  // Writes a checkpoint of the core's current state, unless nothing it holds changed
  // since the one last written or restored (ParameterServerCore::changes(); then returns
  // that one with written = false; `force` writes anyway). A change at the same version
  // (a finish, an evaluation) replaces that version's file. Internal if the state fails
  // CheckCoreState (nothing is written); errors of CheckpointSeries::Save.
  absl::StatusOr<SavedShardCheckpoint> Save(bool force = false);

  // Starts a thread calling Save every `interval` (> 0, checked) and handing each result
  // to `on_save` (called on that thread). At most one periodic thread; checked.
  void StartPeriodic(absl::Duration interval,
                     std::function<void(const absl::StatusOr<SavedShardCheckpoint>&)> on_save);
  // Wakes and joins the periodic thread (a Save in progress completes first). Idempotent.
  void StopPeriodic();

  const CheckpointSeries& series() const { return series_; }

 private:
  void PeriodicLoop(absl::Duration interval,
                    std::function<void(const absl::StatusOr<SavedShardCheckpoint>&)> on_save);

  ParameterServerCore* const core_;
  const ShardCheckpointCodec codec_;
  const ShardCheckpointerOptions options_;
  const CheckpointSeries series_;

  // Serializes Save and Restore (one writer per series).
  absl::Mutex save_mu_;
  bool has_last_ ABSL_GUARDED_BY(save_mu_) = false;
  SavedShardCheckpoint last_ ABSL_GUARDED_BY(save_mu_);
  int64_t last_changes_ ABSL_GUARDED_BY(save_mu_) = -1;  // core changes() when last_ was

  absl::Mutex thread_mu_;
  bool stop_ ABSL_GUARDED_BY(thread_mu_) = false;
  std::thread thread_;  // started and joined under thread_mu_'s protocol (see .cc)
};

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CORE_SHARD_CHECKPOINTER_H_
