// Checkpoints of one parameter server's shard: restore the newest valid one at start,
// write one periodically from a background thread (only when the shard has changed), and
// a final one at shutdown. Each shard is its own series ("ps-<task>-of-<n>-<step>.mnck")
// in the checkpoint folder, so the folder as a whole holds the model (worker/
// model_checkpoint.h's LoadModel reads the newest of every series).
#ifndef MOBILENET_PARAMETER_SERVER_SHARD_CHECKPOINTER_H_
#define MOBILENET_PARAMETER_SERVER_SHARD_CHECKPOINTER_H_

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
#include "parameter_server/parameter_shard.h"

namespace mobilenet {

// "ps-<task_index>-of-<num_ps>": the series prefix of one parameter server's checkpoints.
std::string ShardCheckpointPrefix(int task_index, int num_ps);

// How a shard's state is stored in a checkpoint and read back; mobilenet-ps uses
// model_checkpoint.h's ModelShardCheckpointCodec.
struct ShardCheckpointCodec {
  std::function<Checkpoint(const ShardState&)> encode;
  // Errors (a checkpoint of another model, a malformed one) should name `path`.
  std::function<absl::StatusOr<ShardState>(const Checkpoint& checkpoint, const std::string& path)>
      decode;
};

struct SavedShardCheckpoint {
  int64_t step = 0;  // the shard's version
  std::string path;
  absl::Time time;     // when it was written (or restored)
  bool written = false;  // false: nothing changed since `path`, no file was written
};

struct RestoredShardCheckpoint {
  int64_t step = 0;
  int64_t examples_seen = 0;
  std::string path;
  std::vector<std::string> skipped;  // newer files that did not verify, with the reason
};

// Thread-safe.
class ShardCheckpointer {
 public:
  // Checkpoints `shard` (not owned; must outlive this object) as the series `prefix` in
  // `directory`, keeping the newest `keep_last` (<= 0: all). The codec functions must be
  // set (checked).
  ShardCheckpointer(ParameterShard* shard, ShardCheckpointCodec codec, std::string directory,
                    std::string prefix, int keep_last);
  // Stops the periodic thread; writes nothing.
  ~ShardCheckpointer();

  ShardCheckpointer(const ShardCheckpointer&) = delete;
  ShardCheckpointer& operator=(const ShardCheckpointer&) = delete;

  // Restores the newest checkpoint of the series that verifies into the shard.
  // NotFound when the series has none (a fresh start; the message lists what was skipped).
  // Otherwise the error of reading the folder, of the codec's decode or of
  // ParameterShard::RestoreState, naming the file; the shard is then unchanged.
  absl::StatusOr<RestoredShardCheckpoint> Restore();

  // Writes a checkpoint of the shard's current state, unless its version is the one last
  // written or restored (then returns that one with written = false; `force` writes
  // anyway).
  // Errors of CheckpointSeries::Save.
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

  ParameterShard* const shard_;
  const ShardCheckpointCodec codec_;
  const CheckpointSeries series_;

  // Serializes Save and Restore (one writer per series).
  absl::Mutex save_mu_;
  bool has_last_ ABSL_GUARDED_BY(save_mu_) = false;
  SavedShardCheckpoint last_ ABSL_GUARDED_BY(save_mu_);

  absl::Mutex thread_mu_;
  bool stop_ ABSL_GUARDED_BY(thread_mu_) = false;
  std::thread thread_;  // started and joined under thread_mu_'s protocol (see .cc)
};

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_SHARD_CHECKPOINTER_H_
