// mobilenet-worker: trains MobileNet-V1. Without cluster flags it trains in one process
// against an in-process parameter store (the parameter servers' own shard code); with
// them (or MOBILENET_CLUSTER) it is one worker of a distributed training against the
// mobilenet-ps parameter servers (worker/cluster_training.h).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/cluster_spec.h"
#include "common/float_conversion.h"
#include "metrics/metrics_endpoint.h"
#include "metrics/worker_metrics.h"
#include "model/layers/blas_kernels.h"
#include "parameter_server/cluster_flags.h"
#include "parameter_server/core/parameter_shard.h"
#include "security/security_flags.h"
#include "worker/cluster_training.h"
#include "worker/grpc_parameter_client.h"
#include "worker/local_training.h"
#include "worker/training_data.h"
#include "worker/training_data_flags.h"

// The cluster, model, optimizer and schedule flags are shared with mobilenet-ps
// (parameter_server/cluster_flags.h).
// Data.
ABSL_FLAG(std::string, data_dir, "/usr/share/datasets/fashion-mnist",
          "The data set: IDX files (train-images-idx3-ubyte[.gz], ...), CIFAR-10/100 binaries "
          "or an image folder (DATA_DIR/{train,test|val}/<class>/*.jpg|png).");
ABSL_FLAG(std::string, data_format, "auto",
          "idx, cifar, image_folder or auto (detected from --data_dir, in that order).");
ABSL_FLAG(int, classes, 0,
          "Classes of the model: 0 follows the data set; otherwise it must equal the data "
          "set's number of classes.");
ABSL_FLAG(std::string, metrics_address, "",
          "In a cluster: host:port of an HTTP listener serving this worker's Prometheus "
          "metrics at /metrics (mobilenet_worker_*: steps, examples, loss, step time by "
          "phase); empty: none.");
ABSL_FLAG(bool, synthetic, false, "Train on random synthetic data of the model's shape.");
ABSL_FLAG(int, synthetic_classes, 10, "Classes of the synthetic data.");
ABSL_FLAG(int64_t, synthetic_examples, 10000,
          "Examples in an epoch of the synthetic data (split among the workers of a cluster).");
ABSL_FLAG(bool, flip, true, "Augment with random horizontal flips.");
ABSL_FLAG(int, crop_padding, 2, "Augment with random pad-and-crop by this many pixels (0: off).");
ABSL_FLAG(int, eval_examples, 0, "Test examples to evaluate on (0: all).");
// Gradients.
ABSL_FLAG(double, weight_decay, 4e-5,
          "L2 weight decay on convolution and fully-connected weights (not depthwise).");
ABSL_FLAG(double, clip_norm, 2.0, "Clip gradients by global norm (0: off).");
ABSL_FLAG(double, label_smoothing, 0.1, "Label smoothing.");
// Loop.
ABSL_FLAG(double, epochs, 12, "Epochs to train.");
ABSL_FLAG(int, batch_size, 64, "Examples per step.");
ABSL_FLAG(int, threads, 2, "Compute threads.");
ABSL_FLAG(double, eval_every_epochs, 1, "Evaluate on the test set every N epochs.");
ABSL_FLAG(std::string, checkpoint_dir, "",
          "Where checkpoints go (every epoch and at the end); training resumes from the "
          "newest valid one there. Empty: none.");
ABSL_FLAG(int, keep_checkpoints, 3, "Checkpoints kept in --checkpoint_dir.");
ABSL_FLAG(std::string, export_onnx, "", "Write the trained model as ONNX to this path.");
ABSL_FLAG(bool, quiet, false, "No progress line.");
// Cluster (distributed training). Without these (and without MOBILENET_CLUSTER) the worker
// trains alone in this process. In a cluster the optimizer, learning-rate and batch-norm
// decay flags and the weight seed are the parameter servers' (mobilenet-ps), and
// --checkpoint_dir is theirs too; --epochs are of this worker's shard of the data.
ABSL_FLAG(double, eval_every_secs, 0,
          "Cluster chief: also evaluate every N seconds (0: only every --eval_every_epochs).");
ABSL_FLAG(int, data_block_examples, 1024,
          "Elastic workers (--max_workers): the training set is cut into blocks of about this "
          "many examples, which parameter server 0 leases one at a time to whichever worker "
          "asks. The same on every worker.");
ABSL_FLAG(double, wait_for_workers_secs, 600,
          "Cluster chief: how long to wait for the other workers to finish before ending "
          "the training.");
ABSL_FLAG(double, rpc_timeout_secs, 30, "Cluster: deadline of each RPC attempt.");
ABSL_FLAG(bool, overlap_communication, true,
          "Cluster: push a step's gradients and pull the next weights while the next step "
          "computes (each gradient is then one step staler); false: pull, compute, push in "
          "turn. Single-process training is always in turn.");
ABSL_FLAG(int, stop_exit_code, 0,
          "Exit code when SIGTERM/SIGINT stops the worker before its share is done (it ends "
          "after its step in progress, pushing that step whole). 0 says the stop was clean; "
          "under a Kubernetes Job, where a pod exiting 0 counts as completed, use 143 so "
          "that the Job starts the worker again and it resumes its share.");
ABSL_FLAG(mobilenet::WireDtype, wire_dtype, mobilenet::WireDtype::kFloat32,
          "Cluster: the format of pushed gradients and of pulled training weights on the "
          "wire: fp32, bf16 or fp16. 16-bit gradients are sent with error feedback (the "
          "rounding error is added to the next push); the parameter servers keep float32 "
          "weights and accept every format. Batch-norm statistics and evaluation pulls stay "
          "fp32. See --wire_dtype_pull.");
ABSL_FLAG(std::string, wire_dtype_pull, "",
          "Cluster: the format of pulled training weights, when it should differ from "
          "--wire_dtype (fp32, bf16, fp16); empty: --wire_dtype.");
ABSL_FLAG(double, ps_patience_secs, 300,
          "Cluster: how long a call keeps retrying an unreachable parameter server (e.g. "
          "while it restarts) before the worker gives up.");

namespace {

int Fail(const std::string& message) {
  fprintf(stderr, "mobilenet-worker: %s\n", message.c_str());
  return 1;
}

// Set by the first SIGTERM or SIGINT: training ends after the step in progress (a second
// signal ends the process at once). A lock-free atomic is all a handler may touch.
std::atomic<bool> stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void OnStopSignal(int) { stop_requested.store(true); }

void InstallStopSignals() {
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  action.sa_flags = SA_RESETHAND;  // the second signal takes the default action
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

// Says that the worker is waiting for a server, at most once every few seconds.
class RetryLogger {
 public:
  void operator()(const std::string& what) {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    if (now - last_ < absl::Seconds(5)) return;
    last_ = now;
    printf("%swaiting: %s\n", isatty(fileno(stdout)) == 1 ? "\r\033[K" : "", what.c_str());
    fflush(stdout);
  }

 private:
  absl::Mutex mu_;
  absl::Time last_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// The final evaluation's second line, for the weight average (when evaluated): after the
// "Test accuracy: ..." line, which stays as it was for the tools that read it.
void PrintAverageEvaluation(const mobilenet::EvaluationResult& eval) {
  if (eval.average.examples == 0) return;
  printf("Weight average: %s\n", mobilenet::FormatTestScore(eval.average).c_str());
}

// The "ONNX model: PATH" line, saying when the model holds the weight average.
void PrintExport(const std::string& path, mobilenet::WeightsKind weights) {
  if (path.empty()) return;
  printf("ONNX model: %s%s\n", path.c_str(),
         weights == mobilenet::WeightsKind::kAverage ? " (the weight average)" : "");
}

// Opens the data and logs what was opened (the format, skipped images).
absl::StatusOr<std::shared_ptr<mobilenet::TrainingData>> OpenData(
    const mobilenet::TrainingDataOptions& options) {
  auto data = mobilenet::OpenTrainingData(options);
  if (!data.ok()) return data.status();
  for (const std::string& note : data->notes) printf("%s\n", note.c_str());
  printf("%d classes, %lld training examples%s\n", data->num_classes(),
         static_cast<long long>(options.leased ? data->train_examples
                                               : data->train->examples_per_epoch()),
         options.leased           ? " (leased in blocks by parameter server 0)"
         : options.num_shards > 1 ? " in this worker's shard"
                                  : "");
  fflush(stdout);
  return std::make_shared<mobilenet::TrainingData>(std::move(*data));
}

// One worker of a distributed training; `local` carries the flags the two modes share.
int RunClusterWorker(const mobilenet::ClusterSpec& cluster,
                     const mobilenet::LocalTrainingOptions& local,
                     mobilenet::TrainingDataOptions data_options) {
  if (cluster.job != mobilenet::JobName::kWorker) {
    return Fail("this is mobilenet-worker: --job_name must be \"worker\" (run mobilenet-ps "
                "for parameter servers)");
  }
  const absl::StatusOr<int> max_workers =
      mobilenet::MaxWorkersFromSharedFlags(cluster.num_workers());
  if (!max_workers.ok()) return Fail(std::string(max_workers.status().message()));
  // Shard task_index of num_workers (or the blocks server 0 leases: elastic workers); only
  // the chief evaluates.
  data_options.shard_index = *max_workers > 0 ? 0 : cluster.task_index;
  data_options.num_shards = *max_workers > 0 ? 1 : cluster.num_workers();
  data_options.leased = *max_workers > 0;
  data_options.open_test = cluster.is_chief();
  mobilenet::ClusterTrainingOptions o;
  o.max_workers = *max_workers;
  o.data_block_examples = absl::GetFlag(FLAGS_data_block_examples);
  o.cluster = cluster;
  o.model = local.model;
  o.trainer = local.trainer;
  o.synthetic = local.synthetic;
  o.synthetic_classes = local.synthetic_classes;
  o.synthetic_examples = local.synthetic_examples;
  o.data_seed = local.data_seed;
  o.threads = local.threads;
  o.export_onnx = local.export_onnx;
  o.quiet = local.quiet;
  o.eval_every_secs = absl::GetFlag(FLAGS_eval_every_secs);
  o.trainer.overlap_communication = absl::GetFlag(FLAGS_overlap_communication);
  absl::StatusOr<mobilenet::SyncReplicasConfig> sync =
      mobilenet::SyncReplicasFromSharedFlags(cluster.num_workers(), o.max_workers);
  if (!sync.ok()) return Fail(std::string(sync.status().message()));
  o.trainer.sync_replicas = sync->enabled;
  o.stop = &stop_requested;
  if (!o.synthetic) {
    auto data = OpenData(data_options);
    if (!data.ok()) return Fail(data.status().ToString());
    o.data = std::move(*data);
    o.class_names = o.data->class_names;
  }
  const double wait = absl::GetFlag(FLAGS_wait_for_workers_secs);
  const double liveness = absl::ToDoubleSeconds(sync->worker_liveness);
  const double timeout = absl::GetFlag(FLAGS_rpc_timeout_secs);
  const double patience = absl::GetFlag(FLAGS_ps_patience_secs);
  if (o.eval_every_secs < 0) return Fail("--eval_every_secs must be >= 0");
  if (wait < 0) return Fail("--wait_for_workers_secs must be >= 0");
  if (!(liveness > 0)) return Fail("--worker_liveness_secs must be > 0");
  if (!(timeout > 0)) return Fail("--rpc_timeout_secs must be > 0");
  if (patience < 0) return Fail("--ps_patience_secs must be >= 0");
  o.wait_for_workers = absl::Seconds(wait);
  o.worker_liveness = absl::Seconds(liveness);
  mobilenet::GrpcParameterClientOptions client;
  client.rpc_timeout = absl::Seconds(timeout);
  client.patience = absl::Seconds(patience);
  client.worker_id = cluster.task_index;
  client.stop = &stop_requested;
  client.security = mobilenet::TransportSecurityFromFlags();
  client.push_dtype = absl::GetFlag(FLAGS_wire_dtype);
  client.pull_dtype = client.push_dtype;
  client.sync_replicas = sync->enabled;
  if (const std::string pull = absl::GetFlag(FLAGS_wire_dtype_pull); !pull.empty()) {
    absl::StatusOr<mobilenet::WireDtype> parsed = mobilenet::ParseWireDtype(pull);
    if (!parsed.ok()) return Fail(absl::StrCat("--wire_dtype_pull: ", parsed.status().message()));
    client.pull_dtype = *parsed;
  }
  auto retry_logger = std::make_shared<RetryLogger>();
  client.on_retry = [retry_logger](const std::string& what) { (*retry_logger)(what); };
  const std::vector<std::string> targets = cluster.PsTargets();
  const mobilenet::ConnectToServers connect = [&](const mobilenet::ShardingPlan& plan)
      -> absl::StatusOr<std::unique_ptr<mobilenet::ParameterClient>> {
    auto created = mobilenet::GrpcParameterClient::Create(plan, targets, client);
    if (!created.ok()) return created.status();
    return std::unique_ptr<mobilenet::ParameterClient>(std::move(*created));
  };
  if (!local.checkpoint_dir.empty()) {
    printf("Note: --checkpoint_dir is ignored by workers in a cluster; the parameter servers "
           "checkpoint (mobilenet-ps --checkpoint_dir)\n");
  }
  printf("MobileNet-V1 alpha %.3g, %dx%dx%d input, batch %d, %d thread(s), %s\n", o.model.alpha,
         o.model.resolution, o.model.resolution, o.model.input_channels, o.trainer.batch_size,
         o.threads, cluster.Describe().c_str());
  printf("Wire formats: %s\n", mobilenet::DescribeWireFormats(client).c_str());
  fflush(stdout);
  std::unique_ptr<mobilenet::MetricsEndpoint> metrics_endpoint;
  std::unique_ptr<mobilenet::WorkerMetrics> worker_metrics;
  const std::string metrics_address = absl::GetFlag(FLAGS_metrics_address);
  if (!metrics_address.empty()) {
    auto endpoint = mobilenet::MetricsEndpoint::Start(metrics_address);
    if (!endpoint.ok()) return Fail(endpoint.status().ToString());
    metrics_endpoint = std::move(*endpoint);
    worker_metrics = std::make_unique<mobilenet::WorkerMetrics>(metrics_endpoint->registry());
    o.on_step = [metrics = worker_metrics.get()](const mobilenet::StepTiming& t) {
      metrics->RecordStep(t.compute, t.pull_wait, t.push_wait, t.loss, t.examples);
    };
    client.on_retry_cause = [metrics = worker_metrics.get()](absl::string_view rpc,
                                                             grpc::StatusCode code) {
      metrics->RecordRetry(rpc, code);
    };
    printf("Prometheus metrics on http://%s:%d/metrics\n",
           metrics_address.substr(0, metrics_address.rfind(':')).c_str(), metrics_endpoint->port());
  }
  auto result = mobilenet::RunClusterTraining(o, connect);
  if (!result.ok()) return Fail(result.status().ToString());
  const auto& s = result->summary;
  if (result->stopped) {
    printf("Worker %d stopped on request (SIGTERM/SIGINT) after %lld steps this run; it did not "
           "finish its share, and a restart with the same flags resumes it\n",
           cluster.task_index, static_cast<long long>(s.steps));
    return absl::GetFlag(FLAGS_stop_exit_code);
  }
  printf("Worker %d trained %lld steps (%lld examples) in %s, %.1f images/s\n",
         cluster.task_index, static_cast<long long>(s.steps), static_cast<long long>(s.examples),
         mobilenet::FormatDuration(s.seconds).c_str(), s.images_per_sec);
  if (s.final_evaluation.examples > 0) {
    printf("Test accuracy: %.2f%% (%lld/%lld), test loss %.4f at global step %lld\n",
           100 * s.final_evaluation.accuracy(), static_cast<long long>(s.final_evaluation.correct),
           static_cast<long long>(s.final_evaluation.examples), s.final_evaluation.loss,
           static_cast<long long>(s.final_evaluation.global_step));
    PrintAverageEvaluation(s.final_evaluation);
  }
  PrintExport(result->onnx_path, result->onnx_weights);
  if (result->chief) printf("Training complete; the parameter servers are shutting down.\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Trains MobileNet-V1 asynchronously.\n"
      "Single process (no cluster flags): mobilenet-worker --epochs=10 --checkpoint_dir=DIR\n"
      "One worker of a cluster: mobilenet-worker --ps_hosts=h1:2222,h2:2222 "
      "--worker_hosts=h3:2222,h4:2222 --job_name=worker --task_index=0\n"
      "(or the cluster as JSON in MOBILENET_CLUSTER: {\"cluster\": {\"ps\": [...], "
      "\"worker\": [...]}, \"task\": {\"type\": \"worker\", \"index\": 0}}; flags win "
      "over it field by field).");
  // --help lists the flags of this file (absl's default looks for <binary>.cc).
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view path) {
    return absl::EndsWith(path, "/worker_main.cc") || mobilenet::IsClusterFlagsFile(path) ||
           mobilenet::IsSecurityFlagsFile(path) || mobilenet::IsTrainingDataFlagsFile(path);
  };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  absl::SetFlagsUsageConfig(usage_config);
  absl::ParseCommandLine(argc, argv);
  using mobilenet::LocalTrainingOptions;
  InstallStopSignals();
  if (const std::string blas = mobilenet::SlowBlasKernelWarning(); !blas.empty()) {
    fprintf(stderr, "mobilenet-worker: warning: %s\n", blas.c_str());
  }
  if (absl::GetFlag(FLAGS_stop_exit_code) < 0 || absl::GetFlag(FLAGS_stop_exit_code) > 255) {
    return Fail("--stop_exit_code must be in [0, 255]");
  }

  LocalTrainingOptions o;
  mobilenet::ModelFromSharedFlags(o.model);
  o.synthetic = absl::GetFlag(FLAGS_synthetic);
  o.synthetic_classes = absl::GetFlag(FLAGS_synthetic_classes);
  o.synthetic_examples = absl::GetFlag(FLAGS_synthetic_examples);
  if (o.synthetic_examples < 1) return Fail("--synthetic_examples must be >= 1");
  o.threads = absl::GetFlag(FLAGS_threads);
  o.checkpoint_dir = absl::GetFlag(FLAGS_checkpoint_dir);
  o.keep_checkpoints = absl::GetFlag(FLAGS_keep_checkpoints);
  o.export_onnx = absl::GetFlag(FLAGS_export_onnx);
  o.quiet = absl::GetFlag(FLAGS_quiet);
  o.data_seed = static_cast<uint64_t>(absl::GetFlag(FLAGS_seed));

  const absl::Status shared = mobilenet::ShardConfigFromSharedFlags(o.store);
  if (!shared.ok()) return Fail(std::string(shared.message()));
  // The parameter servers (or the in-process store) keep the average with the same flag.
  o.trainer.evaluate_weight_average = o.store.weight_ema_decay > 0;

  o.trainer.batch_size = absl::GetFlag(FLAGS_batch_size);
  o.trainer.epochs = absl::GetFlag(FLAGS_epochs);
  o.trainer.label_smoothing = static_cast<float>(absl::GetFlag(FLAGS_label_smoothing));
  o.trainer.weight_decay = static_cast<float>(absl::GetFlag(FLAGS_weight_decay));
  o.trainer.clip_norm = static_cast<float>(absl::GetFlag(FLAGS_clip_norm));
  o.trainer.eval_every_epochs = absl::GetFlag(FLAGS_eval_every_epochs);

  // Flag checks the libraries below do not make themselves.
  if (o.threads < 1 || o.threads > 256) return Fail("--threads must be in [1, 256]");
  if (o.trainer.batch_size < 1 || o.trainer.batch_size > mobilenet::kMaxExamplesPerPush) {
    return Fail(absl::StrFormat("--batch_size must be in [1, %d]", mobilenet::kMaxExamplesPerPush));
  }
  if (!(o.trainer.epochs > 0)) return Fail("--epochs must be > 0");
  if (o.store.learning_rate.decay == mobilenet::LearningRateDecay::kCosine &&
      o.store.learning_rate.cosine_epochs != static_cast<float>(o.trainer.epochs)) {
    // Not an error (a run may stop early on purpose), but usually a forgotten flag.
    std::fprintf(stderr,
                 "note: the cosine learning rate reaches 0 after --lr_cosine_epochs=%g, this "
                 "run trains --epochs=%g\n",
                 o.store.learning_rate.cosine_epochs, o.trainer.epochs);
  }
  mobilenet::TrainingDataOptions data;
  data.data_dir = absl::GetFlag(FLAGS_data_dir);
  auto format = mobilenet::ParseTrainingDataFormat(absl::GetFlag(FLAGS_data_format));
  if (!format.ok()) return Fail(std::string(format.status().message()));
  data.format = *format;
  const absl::Status data_flags = mobilenet::TrainingDataOptionsFromFlags(data);
  if (!data_flags.ok()) return Fail(std::string(data_flags.message()));
  data.resolution = o.model.resolution;
  data.channels = o.model.input_channels;
  data.num_classes = absl::GetFlag(FLAGS_classes);
  data.random_flip = absl::GetFlag(FLAGS_flip);
  data.crop_padding = absl::GetFlag(FLAGS_crop_padding);
  data.eval_examples = absl::GetFlag(FLAGS_eval_examples);
  data.batch_size = o.trainer.batch_size;
  data.seed = o.data_seed;
  if (const absl::Status checked = mobilenet::CheckTrainingDataOptions(data); !checked.ok()) {
    return Fail(std::string(checked.message()));
  }
  if (o.trainer.label_smoothing < 0 || o.trainer.label_smoothing >= 1) {
    return Fail("--label_smoothing must be in [0, 1)");
  }
  if (o.trainer.weight_decay < 0) return Fail("--weight_decay must be >= 0");

  auto cluster = mobilenet::ResolveClusterSpec(mobilenet::ClusterDescriptionFromSharedFlags(),
                                               getenv(mobilenet::kClusterEnvVariable),
                                               std::max(0, absl::GetFlag(FLAGS_max_workers)));
  if (!cluster.ok()) return Fail(std::string(cluster.status().message()));
  if (cluster->has_value()) return RunClusterWorker(**cluster, o, data);

  printf("MobileNet-V1 alpha %.3g, %dx%dx%d input, %s, batch %d, %d thread(s), single process\n",
         o.model.alpha, o.model.resolution, o.model.resolution, o.model.input_channels,
         mobilenet::OptimizerKindName(o.store.optimizer.kind), o.trainer.batch_size, o.threads);
  fflush(stdout);
  o.stop = &stop_requested;
  if (!o.synthetic) {
    auto opened = OpenData(data);
    if (!opened.ok()) return Fail(opened.status().ToString());
    o.data = std::move(*opened);
    o.class_names = o.data->class_names;
  }
  auto result = mobilenet::RunLocalTraining(o);
  if (!result.ok()) return Fail(result.status().ToString());
  const auto& s = result->summary;
  if (s.stopped) {
    printf("Stopped on request (SIGTERM/SIGINT) after %lld steps%s%s\n",
           static_cast<long long>(s.steps),
           result->checkpoint_path.empty() ? "" : "; checkpoint ",
           result->checkpoint_path.c_str());
    return absl::GetFlag(FLAGS_stop_exit_code);
  }
  printf("Trained %lld steps (%lld examples) in %s, %.1f images/s\n",
         static_cast<long long>(s.steps), static_cast<long long>(s.examples),
         mobilenet::FormatDuration(s.seconds).c_str(), s.images_per_sec);
  if (s.final_evaluation.examples > 0) {
    printf("Test accuracy: %.2f%% (%lld/%lld), test loss %.4f\n",
           100 * s.final_evaluation.accuracy(), static_cast<long long>(s.final_evaluation.correct),
           static_cast<long long>(s.final_evaluation.examples), s.final_evaluation.loss);
    PrintAverageEvaluation(s.final_evaluation);
  }
  if (!result->checkpoint_path.empty()) printf("Checkpoint: %s\n", result->checkpoint_path.c_str());
  PrintExport(result->onnx_path, result->onnx_weights);
  return 0;
}
