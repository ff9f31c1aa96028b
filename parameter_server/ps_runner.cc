#include "parameter_server/ps_runner.h"

#include <sys/stat.h>

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace mobilenet {

ParameterServerRunner::ParameterServerRunner(ParameterServerRunnerOptions options,
                                             ShardingPlan plan)
    : options_(std::move(options)), plan_(std::move(plan)) {}

absl::StatusOr<std::unique_ptr<ParameterServerRunner>> ParameterServerRunner::Start(
    ParameterServerRunnerOptions options) {
  if (options.num_ps < 1 || options.task_index < 0 || options.task_index >= options.num_ps) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "parameter server task %d of %d: expected 0 <= task < number of parameter servers",
        options.task_index, options.num_ps));
  }
  if (!options.checkpoint_dir.empty() && (!options.codec.encode || !options.codec.decode)) {
    return absl::InvalidArgumentError("a checkpoint folder needs a checkpoint codec");
  }
  if (!options.checkpoint_dir.empty() && options.checkpoint_every <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the checkpoint interval must be > 0");
  }
  ASSIGN_OR_RETURN(ShardingPlan plan, ShardingPlan::Create(options.model, options.num_ps));
  std::unique_ptr<ParameterServerRunner> runner(
      new ParameterServerRunner(std::move(options), std::move(plan)));
  const ParameterServerRunnerOptions& o = runner->options_;
  const ShardingPlan& p = runner->plan_;

  ASSIGN_OR_RETURN(runner->shard_,
                   ParameterShard::Create(p.parameter_layout(), p.state_layout(),
                                          p.shard(o.task_index), o.shard));
  runner->Log(absl::StrFormat(
      "model %s, %d parameter server(s) (plan %s): this one holds %d slices, %.2f MB",
      p.model(), p.num_shards(), FormatFingerprint(p.fingerprint()),
      p.shard(o.task_index).parameters.size() + p.shard(o.task_index).state.size(),
      p.shard_bytes(o.task_index) / (1024.0 * 1024.0)));

  std::optional<std::string> restored_path;
  if (!o.checkpoint_dir.empty()) {
    runner->checkpointer_ = std::make_unique<ShardCheckpointer>(
        runner->shard_.get(), o.codec, o.checkpoint_dir,
        ShardCheckpointPrefix(o.task_index, o.num_ps), o.keep_checkpoints);
    absl::StatusOr<RestoredShardCheckpoint> restored = runner->checkpointer_->Restore();
    if (restored.ok()) {
      restored_path = restored->path;
      for (const std::string& note : restored->skipped) runner->Log("skipped " + note);
      runner->Log(absl::StrFormat("restored %s: step %d, %d examples seen", restored->path,
                                  restored->step, restored->examples_seen));
    } else if (absl::IsNotFound(restored.status())) {
      runner->Log(absl::StrCat("no checkpoint to restore; starting fresh (",
                               restored.status().message(), ")"));
    } else {
      return restored.status();
    }
  } else {
    runner->Log("no --checkpoint_dir: this shard is not checkpointed");
  }

  ParameterServiceOptions service;
  service.shard_index = o.task_index;
  service.num_shards = o.num_ps;
  service.plan_fingerprint = p.fingerprint();
  service.model = p.model();
  service.examples_per_epoch = o.shard.learning_rate.examples_per_epoch;
  service.num_workers = o.num_workers;
  runner->service_ = std::make_unique<ParameterService>(runner->shard_.get(), service);
  if (restored_path.has_value()) {
    // The restored file counts as the last checkpoint until a new one is written.
    struct stat st;
    const absl::Time written = stat(restored_path->c_str(), &st) == 0
                                   ? absl::TimeFromTimespec(st.st_mtim)
                                   : absl::Now();
    runner->service_->SetLastCheckpoint(written, runner->shard_->status().version,
                                        *restored_path);
  }
  ASSIGN_OR_RETURN(StartedServer started, StartGrpcServer(o.bind_address, {runner->service_.get()}));
  runner->server_ = std::move(started.server);
  runner->port_ = started.port;
  const size_t colon = o.bind_address.rfind(':');
  runner->Log(absl::StrCat("serving on ", o.bind_address.substr(0, colon), ":", runner->port_));

  if (runner->checkpointer_ != nullptr) {
    ParameterServerRunner* self = runner.get();
    runner->checkpointer_->StartPeriodic(
        o.checkpoint_every,
        [self](const absl::StatusOr<SavedShardCheckpoint>& saved) { self->OnCheckpoint(saved); });
  }
  if (o.log_every > absl::ZeroDuration()) {
    runner->status_thread_ = std::thread([self = runner.get()]() { self->StatusLoop(); });
  }
  return runner;
}

ParameterServerRunner::~ParameterServerRunner() {
  if (service_ != nullptr) service_->RequestFinish();
  if (status_thread_.joinable()) status_thread_.join();
  if (checkpointer_ != nullptr) checkpointer_->StopPeriodic();
  if (server_ != nullptr && !shut_down_) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + options_.shutdown_grace));
  }
}

void ParameterServerRunner::Log(const std::string& line) const {
  const std::string time = absl::FormatTime("%H:%M:%S", absl::Now(), absl::LocalTimeZone());
  fprintf(options_.log, "[%s ps %d/%d] %s\n", time.c_str(), options_.task_index, options_.num_ps,
          line.c_str());
  fflush(options_.log);
}

void ParameterServerRunner::OnCheckpoint(const absl::StatusOr<SavedShardCheckpoint>& saved) {
  if (!saved.ok()) {
    Log(absl::StrCat("checkpoint failed (will retry): ", saved.status().ToString()));
    return;
  }
  if (!saved->written) return;
  service_->SetLastCheckpoint(saved->time, saved->step, saved->path);
  Log(absl::StrFormat("checkpoint %s (step %d)", saved->path, saved->step));
}

void ParameterServerRunner::StatusLoop() {
  while (!service_->WaitForFinishWithTimeout(options_.log_every)) {
    const ps::v1::StatusResponse s = service_->Status();
    std::vector<std::string> workers;
    for (const ps::v1::WorkerStatus& w : s.workers()) {
      workers.push_back(absl::StrFormat("%d%s(%.0f img/s, seen %.0fs ago)", w.worker_id(),
                                        w.finished() ? " finished " : "", w.images_per_sec(),
                                        w.seconds_since_last_seen()));
    }
    Log(absl::StrFormat(
        "step %d  examples %d  epoch %.2f  lr %.4g  pushes %d applied, %d stale, %d invalid, "
        "%d duplicate  staleness p50/p90/max %d/%d/%d  workers: %s",
        s.global_step(), s.examples_seen(), s.epoch(), s.learning_rate(), s.pushes_applied(),
        s.pushes_rejected_stale(), s.pushes_invalid(), s.pushes_duplicate(), s.staleness_p50(),
        s.staleness_p90(), s.staleness_max(),
        workers.empty() ? "none yet" : absl::StrJoin(workers, ", ")));
  }
}

void ParameterServerRunner::RequestStop() {
  stop_requested_ = true;
  service_->RequestFinish();
  if (!stop_.HasBeenNotified()) stop_.Notify();
}

absl::Status ParameterServerRunner::WaitAndShutdown() {
  service_->WaitForFinish();
  if (!stop_requested_ && !options_.exit_when_training_ends) {
    if (checkpointer_ != nullptr) OnCheckpoint(checkpointer_->Save());
    Log("training is over; serving the trained weights until stopped");
    stop_.WaitForNotification();
  }
  Log(stop_requested_ ? "stop requested; shutting down"
                      : "training is over; shutting down");
  server_->Shutdown(absl::ToChronoTime(absl::Now() + options_.shutdown_grace));
  server_->Wait();
  shut_down_ = true;
  if (status_thread_.joinable()) status_thread_.join();
  if (checkpointer_ == nullptr) return absl::OkStatus();
  checkpointer_->StopPeriodic();
  absl::StatusOr<SavedShardCheckpoint> saved = checkpointer_->Save();
  if (!saved.ok()) {
    Log(absl::StrCat("final checkpoint failed: ", saved.status().ToString()));
    return saved.status();
  }
  if (saved->written) {
    service_->SetLastCheckpoint(saved->time, saved->step, saved->path);
    Log(absl::StrFormat("final checkpoint %s (step %d)", saved->path, saved->step));
  } else {
    Log(absl::StrFormat("no change since checkpoint %s (step %d)", saved->path, saved->step));
  }
  return absl::OkStatus();
}

}  // namespace mobilenet
