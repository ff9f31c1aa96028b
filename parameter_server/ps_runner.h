// One parameter-server process's life, free of flags and signals: compute the sharding
// plan, create this task's core (shard and ledger), restore its newest valid checkpoint,
// serve it over gRPC (with health and reflection, and limits from the plan), checkpoint
// periodically, and when training ends (the chief's Finish, every worker finished, or a
// stop request such as SIGTERM) stop serving and write a final checkpoint. mobilenet-ps
// (ps_main.cc) is flags around this class.
#ifndef MOBILENET_PARAMETER_SERVER_PS_RUNNER_H_
#define MOBILENET_PARAMETER_SERVER_PS_RUNNER_H_

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "metrics/ps_metrics_endpoint.h"
#include "model/architecture.h"
#include "parameter_server/core/parameter_server_core.h"
#include "parameter_server/core/shard_checkpointer.h"
#include "parameter_server/core/sharding_plan.h"
#include "parameter_server/grpc_server.h"
#include "parameter_server/parameter_service.h"
#include "security/caller_authentication.h"
#include "security/transport_security.h"

namespace mobilenet {

// The line the server logs when training ends, parsed back by report/run_log.cc:
// "staleness of the 1234 pushes applied by this run: 0:200 1:1000 2:34" (pushes per
// staleness; "63+:5" when the last entry folds the tail, see StatusResponse).
std::string FormatStalenessCounts(const ps::v1::StatusResponse& status);
// The line the server logs when training ends under --staleness_policy=dc:
// "delay compensation: 1200 pushes compensated, 3 applied uncompensated (...)".
std::string FormatDelayCompensationCounts(const ps::v1::StatusResponse& status);

struct ParameterServerRunnerOptions {
  int task_index = 0;            // this server's place in the plan, in [0, num_ps)
  int num_ps = 1;
  int num_workers = 1;           // members of the cluster (--worker_hosts), >= 1
  // --max_workers: elastic workers with that many member slots (num_workers equals it);
  // 0: off, the members are --worker_hosts.
  int max_workers = 0;
  std::string bind_address;      // "host:port" exactly as to listen on (port 0: any free)
  // How callers are identified (checked: see CheckTransportSecurity and
  // CheckListeningAllowed: beyond loopback, security or `insecure` is required).
  TransportSecurity security;
  // "host:port" of a second, plaintext listener serving only the health service (for
  // Kubernetes gRPC probes, which speak no TLS); empty: none.
  std::string health_address;
  // "host:port" of an HTTP listener serving Prometheus metrics at /metrics (this
  // server's, metrics/ps_metrics.h, and its gRPC calls', metrics/grpc_server_metrics.h);
  // empty: none.
  std::string metrics_address;
  MobileNetConfig model;
  // Seed, optimizer, learning-rate schedule (with examples_per_epoch: the whole training
  // set), staleness policy, moving-average decay.
  ParameterShardConfig shard;
  SyncReplicasConfig sync;       // --sync_replicas (parameter_server/core/sync_replicas.h)
  std::string checkpoint_dir;    // empty: no checkpoints
  ShardCheckpointCodec codec;    // required when checkpoint_dir is set
  absl::Duration checkpoint_every = absl::Seconds(60);
  int keep_checkpoints = 3;
  // Start from step 0 even when every checkpoint of this server was refused (see
  // ShardCheckpointer); otherwise that is an error.
  bool allow_fresh_start = false;
  // A status line (step, examples, learning rate, pushes, workers) this often; zero: none.
  absl::Duration log_every = absl::Seconds(30);
  // This often, free heap memory beyond what is kept on purpose for payloads (see
  // RetainPayloadMemory) is given back to the system, so a burst of requests does not
  // leave the process large; zero: never.
  absl::Duration memory_check_every = absl::Seconds(5);
  FILE* log = stderr;            // not owned; where the server's lines go
  // In-flight RPCs get this long to complete when the server stops.
  absl::Duration shutdown_grace = absl::Seconds(5);
  // When training ends (the chief's Finish): true, checkpoint and stop serving; false,
  // checkpoint and keep serving the trained weights until RequestStop (for orchestrators
  // that restart a process that exits, such as a Kubernetes StatefulSet).
  bool exit_when_training_ends = true;
};

// Thread-safe: RequestStop may be called from any thread while another waits.
class ParameterServerRunner {
 public:
  // Builds the plan and the core, restores the newest valid checkpoint of this task's
  // series (logging what was restored and what was set aside; none is a fresh start), and
  // starts serving and the periodic checkpoints. Errors name the problem: an invalid
  // model or config, no checkpoint that can be restored where there were some, or one of
  // another model (use another folder), an address that cannot be bound.
  static absl::StatusOr<std::unique_ptr<ParameterServerRunner>> Start(
      ParameterServerRunnerOptions options);

  ~ParameterServerRunner();

  // The port listened on (the bound one when the address asked for port 0), and the
  // health listener's (0 without one).
  int port() const { return port_; }
  int health_port() const { return health_.port; }
  // The metrics listener's port (0 without one).
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  const ShardingPlan& plan() const { return plan_; }
  ParameterServerCore& core() { return *core_; }

  // Ends serving as if training were over (e.g. on SIGTERM); WaitAndShutdown returns.
  void RequestStop();

  // Blocks until training ends (and then, unless exit_when_training_ends, writes a
  // checkpoint and blocks on until RequestStop) or RequestStop, then stops serving
  // (in-flight RPCs get shutdown_grace), stops the periodic checkpoints and writes the
  // final checkpoint. Returns the final checkpoint's error, if any. Call once.
  absl::Status WaitAndShutdown();

 private:
  ParameterServerRunner(ParameterServerRunnerOptions options, ShardingPlan plan);
  void Log(const std::string& line) const;
  // Logs and records in Status a checkpoint Save result.
  void OnCheckpoint(const absl::StatusOr<SavedShardCheckpoint>& saved);
  void StatusLoop();
  // Gives free memory back when the resident size exceeds `baseline_bytes` (after start)
  // plus what is retained on purpose.
  void MemoryLoop(size_t baseline_bytes);

  const ParameterServerRunnerOptions options_;
  const ShardingPlan plan_;
  std::unique_ptr<ParameterServerCore> core_;
  std::unique_ptr<ShardCheckpointer> checkpointer_;
  std::unique_ptr<CallerAuthenticator> authenticator_;
  // Null without metrics_address. Declared before the server, so destroyed after it.
  std::unique_ptr<ParameterServerMetricsEndpoint> metrics_;
  std::unique_ptr<ParameterService> service_;
  std::unique_ptr<grpc::Server> server_;
  StartedServer health_;  // health_.server null without health_address
  int port_ = 0;
  std::atomic<bool> stop_requested_{false};
  absl::Notification stop_;  // notified by RequestStop
  std::atomic<bool> shut_down_{false};
  std::thread status_thread_;
  std::thread memory_thread_;
};

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_PS_RUNNER_H_
