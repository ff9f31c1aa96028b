#include "parameter_server/ps_runner.h"

#include <sys/stat.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "parameter_server/core/weight_backups.h"
#include "parameter_server/wire_payload.h"

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
  RETURN_IF_ERROR(CheckTransportSecurity(options.security));
  RETURN_IF_ERROR(CheckListeningAllowed(options.bind_address, options.security));
  ASSIGN_OR_RETURN(ShardingPlan plan, ShardingPlan::Create(options.model, options.num_ps));
  std::unique_ptr<ParameterServerRunner> runner(
      new ParameterServerRunner(std::move(options), std::move(plan)));
  const ParameterServerRunnerOptions& o = runner->options_;
  const ShardingPlan& p = runner->plan_;

  CoreOptions core_options;
  core_options.shard_index = o.task_index;
  core_options.num_workers = o.num_workers;
  core_options.max_workers = o.max_workers;
  core_options.sync = o.sync;
  const bool loopback = IsLoopbackAddress(o.bind_address);
  core_options.insecure = !loopback && !o.security.enabled();
  core_options.transport_security = o.security.enabled()
                                        ? o.security.Describe()
                                        : (loopback ? "none (loopback only)" : "none (--insecure)");
  ASSIGN_OR_RETURN(runner->core_, ParameterServerCore::Create(p, o.shard, core_options));
  if (o.max_workers > 0) {
    runner->Log(
        absl::StrFormat("elastic workers: up to %d members, gone after %.0f s without contact%s",
                        o.max_workers, absl::ToDoubleSeconds(o.sync.worker_liveness),
                        o.task_index == 0 ? "; this server leases the training data" : ""));
  }
  runner->Log(absl::StrFormat(
      "model %s, %d parameter server(s) (plan %s): this one holds %d slices, %.2f MB",
      p.model(), p.num_shards(), FormatFingerprint(p.fingerprint()),
      p.shard(o.task_index).parameters.size() + p.shard(o.task_index).state.size(),
      p.shard_bytes(o.task_index) / (1024.0 * 1024.0)));
  const OptimizerConfig& optimizer = o.shard.optimizer;
  runner->Log(absl::StrFormat(
      "optimizer %s%s, learning rate %s, weight average %s", OptimizerKindName(optimizer.kind),
      optimizer.kind == OptimizerKind::kRmsProp
          ? absl::StrFormat(" (decay %g, momentum %g, epsilon %g)", optimizer.rmsprop_decay,
                            optimizer.momentum, optimizer.epsilon)
      : optimizer.kind == OptimizerKind::kMomentum
          ? absl::StrFormat(" (momentum %g)", optimizer.momentum)
          : std::string(),
      runner->core_->shard().learning_rate_schedule().Describe(),
      o.shard.weight_ema_decay > 0 ? absl::StrFormat("decay %g", o.shard.weight_ema_decay)
                                   : std::string("off")));
  if (o.shard.staleness_policy == StalenessPolicy::kDelayCompensation) {
    runner->Log(absl::StrFormat(
        "staleness policy dc (delay compensation), lambda %g%s: keeps the last %d training "
        "pulls of each of %d worker(s), up to %.2f MB, not checkpointed",
        o.shard.dc_lambda, o.shard.dc_adaptive ? " / sqrt(RMSprop mean square)" : "",
        WeightBackups::kPullsPerWorker, o.num_workers,
        static_cast<double>(o.num_workers) * WeightBackups::kPullsPerWorker *
            runner->core_->parameter_count() * sizeof(float) / (1024.0 * 1024.0)));
  }

  if (!o.checkpoint_dir.empty()) {
    ShardCheckpointerOptions checkpoints;
    checkpoints.directory = o.checkpoint_dir;
    checkpoints.prefix = ShardCheckpointPrefix(o.task_index, o.num_ps);
    checkpoints.keep_last = o.keep_checkpoints;
    checkpoints.allow_fresh_start = o.allow_fresh_start;
    runner->checkpointer_ =
        std::make_unique<ShardCheckpointer>(runner->core_.get(), o.codec, checkpoints);
    ASSIGN_OR_RETURN(const RestoredShardCheckpoint restored, runner->checkpointer_->Restore());
    for (const std::string& note : restored.set_aside) runner->Log("refused " + note);
    if (!restored.path.empty()) {
      runner->Log(absl::StrFormat("restored %s: step %d, %d examples seen", restored.path,
                                  restored.step, restored.examples_seen));
      // The restored file counts as the last checkpoint until a new one is written.
      struct stat st;
      const absl::Time written = stat(restored.path.c_str(), &st) == 0
                                     ? absl::TimeFromTimespec(st.st_mtim)
                                     : absl::Now();
      runner->core_->SetLastCheckpoint(written, restored.step, restored.path);
    } else if (!restored.set_aside.empty()) {
      runner->Log("WARNING: every checkpoint was refused and set aside; starting from step 0 "
                  "as --allow_fresh_start asks");
    } else {
      runner->Log("no checkpoint to restore; starting fresh");
    }
  } else {
    runner->Log("no --checkpoint_dir: this shard is not checkpointed");
  }

  if (core_options.insecure) {
    runner->Log(absl::StrCat("WARNING: listening on ", o.bind_address,
                             " without transport security (--insecure): anyone who reaches it "
                             "can read the weights, push gradients and end the training"));
  }
  ASSIGN_OR_RETURN(runner->authenticator_, CallerAuthenticator::Create(o.security));
  runner->service_ =
      std::make_unique<ParameterService>(runner->core_.get(), runner->authenticator_.get());
  std::vector<grpc::experimental::ServerInterceptorFactoryInterface*> interceptors;
  if (!o.metrics_address.empty()) {
    ASSIGN_OR_RETURN(runner->metrics_,
                     ParameterServerMetricsEndpoint::Start(o.metrics_address, runner->core_.get()));
    interceptors.push_back(runner->metrics_->interceptor());
    runner->Log(absl::StrCat("Prometheus metrics on http://",
                             o.metrics_address.substr(0, o.metrics_address.rfind(':')), ":",
                             runner->metrics_->port(), "/metrics"));
  }
  const int message_limit = MessageLimitForPayload(
      (runner->core_->parameter_count() + runner->core_->state_count()) * sizeof(float));
  ASSIGN_OR_RETURN(
      StartedServer started,
      StartGrpcServer(o.bind_address, {runner->service_.get()},
                      ParameterServerLimits(message_limit, o.num_workers),
                      ServerCredentialsFor(o.security),
                      /*reflection=*/!runner->authenticator_->enabled(), interceptors));
  runner->server_ = std::move(started.server);
  runner->port_ = started.port;
  const size_t colon = o.bind_address.rfind(':');
  runner->Log(absl::StrCat("serving on ", o.bind_address.substr(0, colon), ":", runner->port_,
                           " (transport security: ", core_options.transport_security, ")"));
  if (!o.health_address.empty()) {
    ASSIGN_OR_RETURN(runner->health_,
                     StartGrpcServer(o.health_address, {}, GrpcServerLimits(), nullptr,
                                     /*reflection=*/false));
    runner->Log(absl::StrCat("health checks (only) on ",
                             o.health_address.substr(0, o.health_address.rfind(':')), ":",
                             runner->health_.port));
  }

  if (runner->checkpointer_ != nullptr) {
    ParameterServerRunner* self = runner.get();
    runner->checkpointer_->StartPeriodic(
        o.checkpoint_every,
        [self](const absl::StatusOr<SavedShardCheckpoint>& saved) { self->OnCheckpoint(saved); });
  }
  if (o.log_every > absl::ZeroDuration()) {
    runner->status_thread_ = std::thread([self = runner.get()]() { self->StatusLoop(); });
  }
  if (o.memory_check_every > absl::ZeroDuration()) {
    runner->memory_thread_ = std::thread(
        [self = runner.get(), baseline = ResidentBytes()]() { self->MemoryLoop(baseline); });
  }
  return runner;
}

ParameterServerRunner::~ParameterServerRunner() {
  if (core_ != nullptr) core_->RequestFinish();
  if (status_thread_.joinable()) status_thread_.join();
  if (memory_thread_.joinable()) memory_thread_.join();
  if (checkpointer_ != nullptr) checkpointer_->StopPeriodic();
  if (server_ != nullptr && !shut_down_) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + options_.shutdown_grace));
  }
  if (health_.server != nullptr) health_.server->Shutdown();
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
  core_->SetLastCheckpoint(saved->time, saved->step, saved->path);
  if (metrics_ != nullptr) metrics_->ps_metrics().RecordCheckpointWritten(saved->duration);
  Log(absl::StrFormat("checkpoint %s (step %d)", saved->path, saved->step));
}

void ParameterServerRunner::StatusLoop() {
  while (!core_->WaitForFinishWithTimeout(options_.log_every)) {
    const ps::v1::StatusResponse s = core_->GetStatus();
    std::vector<std::string> workers;
    for (const ps::v1::WorkerStatus& w : s.workers()) {
      if (w.seconds_since_last_seen() < 0) {
        workers.push_back(absl::StrFormat("%d (not seen yet)", w.worker_id()));
        continue;
      }
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
    if (s.sync_replicas()) {
      Log(absl::StrFormat(
          "synchronous step %d: %d of %d gradients counted, %d dropped as late, %d steps "
          "incomplete%s%s",
          s.sync_steps(), s.sync_gradients_pending(), s.sync_gradients_needed(),
          s.sync_pushes_dropped(), s.sync_steps_incomplete(), s.sync_waiting().empty() ? "" : "; ",
          s.sync_waiting()));
    }
  }
}

std::string FormatStalenessCounts(const ps::v1::StatusResponse& status) {
  std::vector<std::string> entries;
  for (int i = 0; i < status.staleness_counts_size(); ++i) {
    const ps::v1::StalenessCount& c = status.staleness_counts(i);
    const bool folded = i + 1 == kMaxStalenessCounts;
    entries.push_back(absl::StrCat(c.staleness(), folded ? "+" : "", ":", c.pushes()));
  }
  return absl::StrCat("staleness of the ", status.pushes_applied(), " pushes applied by this run: ",
                      entries.empty() ? "none" : absl::StrJoin(entries, " "));
}

std::string FormatDelayCompensationCounts(const ps::v1::StatusResponse& status) {
  return absl::StrFormat(
      "delay compensation: %d pushes compensated, %d applied uncompensated (no backup of the "
      "weights they were computed from)",
      status.pushes_compensated(), status.pushes_uncompensated());
}

void ParameterServerRunner::MemoryLoop(size_t baseline_bytes) {
  const size_t kept = RetainedHeapBytes(
      (core_->parameter_count() + core_->state_count()) * sizeof(float));
  while (!core_->WaitForFinishWithTimeout(options_.memory_check_every)) {
    const size_t resident = ResidentBytes();
    if (resident == 0 || resident <= baseline_bytes + kept) continue;
    const size_t released = ReleaseFreeHeapMemory();
    if (released >= (size_t{1} << 20)) {
      Log(absl::StrFormat("gave %.0f MiB of free memory back to the system (resident %.0f MiB)",
                          released / 1048576.0, ResidentBytes() / 1048576.0));
    }
  }
}

void ParameterServerRunner::RequestStop() {
  stop_requested_ = true;
  core_->RequestFinish();
  if (!stop_.HasBeenNotified()) stop_.Notify();
}

absl::Status ParameterServerRunner::WaitAndShutdown() {
  core_->WaitForFinish();
  const ps::v1::StatusResponse final_status = core_->GetStatus();
  Log(FormatStalenessCounts(final_status));
  if (options_.shard.staleness_policy == StalenessPolicy::kDelayCompensation) {
    Log(FormatDelayCompensationCounts(final_status));
  }
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
  if (memory_thread_.joinable()) memory_thread_.join();
  if (checkpointer_ == nullptr) return absl::OkStatus();
  checkpointer_->StopPeriodic();
  absl::StatusOr<SavedShardCheckpoint> saved = checkpointer_->Save();
  if (!saved.ok()) {
    Log(absl::StrCat("final checkpoint failed: ", saved.status().ToString()));
    return saved.status();
  }
  if (saved->written) {
    core_->SetLastCheckpoint(saved->time, saved->step, saved->path);
    if (metrics_ != nullptr) metrics_->ps_metrics().RecordCheckpointWritten(saved->duration);
    Log(absl::StrFormat("final checkpoint %s (step %d)", saved->path, saved->step));
  } else {
    Log(absl::StrFormat("no change since checkpoint %s (step %d)", saved->path, saved->step));
  }
  return absl::OkStatus();
}

}  // namespace mobilenet
