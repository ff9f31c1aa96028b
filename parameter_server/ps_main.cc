// mobilenet-ps: one parameter server of a distributed MobileNet-V1 training. It holds its
// part of the weights (the sharding plan every process computes from the model flags and
// the number of parameter servers), applies the workers' gradients, checkpoints, and exits
// when training ends (the chief's Finish) or on SIGTERM/SIGINT after a final checkpoint.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/cluster_spec.h"
#include "common/status_macros.h"
#include "parameter_server/cluster_flags.h"
#include "parameter_server/core/model_checkpoint.h"
#include "parameter_server/core/sharding_plan.h"
#include "parameter_server/ps_runner.h"
#include "parameter_server/wire_payload.h"
#include "security/security_flags.h"

// The cluster, model, optimizer and schedule flags are shared with mobilenet-worker
// (parameter_server/cluster_flags.h).
ABSL_FLAG(std::string, bind_address, "",
          "host:port to listen on instead of this task's own --ps_hosts entry (e.g. "
          "0.0.0.0:2222 to listen on every interface; nothing does unless asked).");
ABSL_FLAG(std::string, health_address, "",
          "host:port of a second, plaintext listener serving only the gRPC health service, for "
          "probes that speak no TLS (Kubernetes gRPC probes); empty: none. The parameter "
          "service is never served there.");
ABSL_FLAG(std::string, metrics_address, "",
          "host:port of an HTTP listener serving Prometheus metrics at /metrics (mobilenet_ps_* "
          "and grpc_server_*; plaintext, unauthenticated: training figures only); empty: "
          "none. e.g. 127.0.0.1:9100, or 0.0.0.0:9100 for a scraper on another host.");
ABSL_FLAG(int, classes, 10, "Classes (the workers take theirs from the data: 10 for Fashion-MNIST).");
ABSL_FLAG(int64_t, examples_per_epoch, 60000,
          "Training examples per epoch (the whole training set, over all workers): the "
          "learning-rate schedule and the epoch in status count in these.");
ABSL_FLAG(std::string, staleness_policy, "apply",
          "What to do with a gradient computed from an old version: apply (as is), scale "
          "(learning rate / staleness), reject (above --max_staleness) or dc (delay "
          "compensation, Zheng et al. 2017: g + --dc_lambda * g*g*(w_now - w_pulled), with the "
          "weights each worker pulled kept for its next pushes: 2 copies of this server's "
          "weights per worker, not checkpointed).");
ABSL_FLAG(double, dc_lambda, 0.04,
          "--staleness_policy=dc: lambda, the weight of the correction (finite, >= 0; 0.04 as "
          "the paper's DC-ASGD-c).");
ABSL_FLAG(bool, dc_adaptive, false,
          "--staleness_policy=dc with --optimizer=rmsprop: DC-ASGD-a, lambda divided per "
          "element by the square root of RMSprop's mean square of the gradients, so the "
          "correction scales with the gradients' own size (the paper's lambda0 for it: 2).");
ABSL_FLAG(int64_t, max_staleness, 16,
          "--staleness_policy=reject: the largest staleness applied. Workers that overlap "
          "communication (their default) push gradients at least 1 step stale.");
// Checkpoints.
ABSL_FLAG(std::string, checkpoint_dir, "",
          "Folder of checkpoints: this server writes its own series ps-<task>-of-<n>-<step>.mnck "
          "there and restores its newest valid one on start. Empty: no checkpoints.");
ABSL_FLAG(double, checkpoint_every_secs, 60, "Seconds between checkpoints (and one at exit).");
ABSL_FLAG(int, keep_checkpoints, 3, "Checkpoints of this server kept in --checkpoint_dir.");
ABSL_FLAG(bool, allow_fresh_start, false,
          "Start from step 0 even though every checkpoint of this server in --checkpoint_dir "
          "was refused (unreadable, corrupt or failing its checks; such files are renamed "
          "*.corrupt, never deleted). Without it the server refuses to start over them.");
ABSL_FLAG(double, log_every_secs, 30, "Seconds between status lines (0: none).");
ABSL_FLAG(bool, exit_after_training, true,
          "When the chief ends the training, write a final checkpoint and exit 0. false: "
          "write it and keep serving the trained weights (for mobilenet-ctl eval/export "
          "--ps_hosts) until SIGTERM, for orchestrators that restart a process that exits "
          "(a Kubernetes StatefulSet).");

namespace {

// Set by the SIGTERM/SIGINT handler; a thread polls it (a handler may only touch
// lock-free atomics, and libraries such as OpenBLAS start threads before main, so
// blocking the signals for sigwait is not possible).
std::atomic<int> received_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

void OnSignal(int signal) { received_signal = signal; }

int Fail(const std::string& message) {
  fprintf(stderr, "mobilenet-ps: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "A parameter server of distributed MobileNet-V1 training.\n"
      "  mobilenet-ps --ps_hosts=h1:2222,h2:2222 --worker_hosts=h3:2222,h4:2222 \\\n"
      "               --job_name=ps --task_index=0 --checkpoint_dir=DIR\n"
      "The cluster may instead come from the MOBILENET_CLUSTER environment variable: "
      "{\"cluster\": {\"ps\": [...], \"worker\": [...]}, \"task\": {\"type\": \"ps\", "
      "\"index\": 0}}; flags given on the command line win over it field by field.\n"
      "Exits 0 when training ends (the chief's Finish) or on SIGTERM/SIGINT, after a final "
      "checkpoint.");
  // --help lists the flags of this file (absl's default looks for <binary>.cc).
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view path) {
    return absl::EndsWith(path, "/ps_main.cc") || mobilenet::IsClusterFlagsFile(path) ||
           mobilenet::IsSecurityFlagsFile(path);
  };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  absl::SetFlagsUsageConfig(usage_config);
  absl::ParseCommandLine(argc, argv);
  using namespace mobilenet;
  // So that the memory a burst of requests leaves free can be given back (ps_runner.h).
  UseOneHeapArena();

  auto cluster = ResolveClusterSpec(
      ClusterDescriptionFromSharedFlags(),
      getenv(kClusterEnvVariable));
  if (!cluster.ok()) return Fail(std::string(cluster.status().message()));
  if (!cluster->has_value()) {
    return Fail(absl::StrCat("no cluster: give --ps_hosts, --worker_hosts, --job_name=ps and "
                             "--task_index (or ", kClusterEnvVariable, "); see --help"));
  }
  const ClusterSpec& spec = **cluster;
  if (spec.job != JobName::kParameterServer) {
    return Fail("this is mobilenet-ps: --job_name must be \"ps\" (run mobilenet-worker for "
                "workers)");
  }
  auto bind = ParameterServerBindAddress(spec, absl::GetFlag(FLAGS_bind_address));
  if (!bind.ok()) return Fail(std::string(bind.status().message()));

  ParameterServerRunnerOptions o;
  o.task_index = spec.task_index;
  o.num_ps = spec.num_ps();
  o.num_workers = spec.num_workers();  // the members: worker ids [0, num_workers)
  absl::StatusOr<int> max_workers = MaxWorkersFromSharedFlags(spec.num_workers());
  if (!max_workers.ok()) return Fail(std::string(max_workers.status().message()));
  if (*max_workers > 0) {
    // Elastic: the member slots are [0, --max_workers), whoever of them joins.
    o.max_workers = *max_workers;
    o.num_workers = *max_workers;
  }
  o.bind_address = *bind;
  o.security = TransportSecurityFromFlags();
  o.health_address = absl::GetFlag(FLAGS_health_address);
  o.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  ModelFromSharedFlags(o.model);
  o.model.num_classes = absl::GetFlag(FLAGS_classes);

  const absl::Status shared = ShardConfigFromSharedFlags(o.shard);
  if (!shared.ok()) return Fail(std::string(shared.message()));
  absl::StatusOr<SyncReplicasConfig> sync =
      SyncReplicasFromSharedFlags(spec.num_workers(), o.max_workers);
  if (!sync.ok()) return Fail(std::string(sync.status().message()));
  o.sync = *sync;
  auto policy = ParseStalenessPolicy(absl::GetFlag(FLAGS_staleness_policy));
  if (!policy.ok()) return Fail(absl::StrCat("--staleness_policy: ", policy.status().message()));
  o.shard.learning_rate.examples_per_epoch = absl::GetFlag(FLAGS_examples_per_epoch);
  o.shard.staleness_policy = *policy;
  o.shard.max_staleness = absl::GetFlag(FLAGS_max_staleness);
  o.shard.dc_lambda = static_cast<float>(absl::GetFlag(FLAGS_dc_lambda));
  o.shard.dc_adaptive = absl::GetFlag(FLAGS_dc_adaptive);
  if (o.shard.learning_rate.examples_per_epoch < 1) return Fail("--examples_per_epoch must be >= 1");
  if (o.shard.max_staleness < 0) return Fail("--max_staleness must be >= 0");

  o.checkpoint_dir = absl::GetFlag(FLAGS_checkpoint_dir);
  const double every = absl::GetFlag(FLAGS_checkpoint_every_secs);
  if (!(every > 0)) return Fail("--checkpoint_every_secs must be > 0");
  o.checkpoint_every = absl::Seconds(every);
  o.keep_checkpoints = absl::GetFlag(FLAGS_keep_checkpoints);
  if (o.keep_checkpoints < 1) return Fail("--keep_checkpoints must be >= 1");
  o.allow_fresh_start = absl::GetFlag(FLAGS_allow_fresh_start);
  const double log_every = absl::GetFlag(FLAGS_log_every_secs);
  if (log_every < 0) return Fail("--log_every_secs must be >= 0");
  o.log_every = absl::Seconds(log_every);
  o.log = stdout;
  o.exit_when_training_ends = absl::GetFlag(FLAGS_exit_after_training);

  // The shard's state in the model checkpoint format mobilenet-ctl reads.
  auto plan = ShardingPlan::Create(o.model, spec.num_ps());
  if (!plan.ok()) return Fail(std::string(plan.status().message()));
  o.codec = ModelShardCheckpointCodec(o.model, *plan, OptimizerKindName(o.shard.optimizer.kind),
                                      spec.task_index);

  printf("mobilenet-ps: %s\n", spec.Describe().c_str());
  fflush(stdout);
  // Before the restore, which may take long: a SIGTERM during it is honoured once it ends
  // (nothing is written then, so the checkpoint series stays as it was).
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  auto runner = ParameterServerRunner::Start(std::move(o));
  if (!runner.ok()) return Fail(runner.status().ToString());

  std::atomic<bool> done{false};
  std::thread signal_thread([&]() {
    while (!done) {
      absl::SleepFor(absl::Milliseconds(100));
      const int signal = received_signal;
      if (signal != 0) {
        printf("mobilenet-ps: %s received\n", signal == SIGTERM ? "SIGTERM" : "SIGINT");
        fflush(stdout);
        (*runner)->RequestStop();
        return;
      }
    }
  });
  const absl::Status status = (*runner)->WaitAndShutdown();
  done = true;
  signal_thread.join();
  runner->reset();
  if (!status.ok()) return Fail(status.ToString());
  printf("mobilenet-ps: exiting\n");
  return 0;
}
