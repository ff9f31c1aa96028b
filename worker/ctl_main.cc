// mobilenet-ctl: works with trained models.
//   mobilenet-ctl export  --checkpoint PATH --output model.onnx [--weights=raw|ema]
//   mobilenet-ctl predict --checkpoint PATH [--count N | --input batch.npy] [--json]
//                         [--weights=raw|ema]
//   mobilenet-ctl predict --checkpoint PATH --image a.jpg [--image b.png ...] [--top_k 5]
//                         [--json] [--weights=raw|ema]
//   mobilenet-ctl eval    --checkpoint PATH [--data_dir DIR] [--weights=raw|ema]
//   mobilenet-ctl status  --ps_hosts=h1:p1,h2:p2 [--json] [--watch[=SECONDS]]
//   mobilenet-ctl report  --run_dir DIR [--out DIR/report.html]
//   mobilenet-ctl report  --ps_hosts=h1:p1,h2:p2 [--out report.html] [--poll_secs 10]
//   mobilenet-ctl inspect-data --data_dir DIR [--data_format=auto|image_folder|cifar]
//                              [--check=header|decode] [--json]
//   mobilenet-ctl convert-data [--from_idx DIR] --to image_folder_png|image_folder_jpeg|cifar
//                              --out DIR [--max_per_class N]
// PATH is a checkpoint file or a folder of checkpoints (one series per parameter-server
// shard, or a single-process run's --checkpoint_dir).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/class_names.h"
#include "common/cluster_spec.h"
#include "common/npy.h"
#include "common/status_macros.h"
#include "input/data_inspection.h"
#include "model/layers/compute_threads.h"
#include "model/mobilenet_v1.h"
#include "model/onnx_export.h"
#include "parameter_server/core/model_checkpoint.h"
#include "parameter_server/core/sharding_plan.h"
#include "report/status_history.h"
#include "report/training_report.h"
#include "security/security_flags.h"
#include "worker/cluster_status.h"
#include "worker/data_conversion.h"
#include "worker/evaluation_reader.h"
#include "worker/grpc_parameter_client.h"
#include "worker/idx_reader.h"
#include "worker/image_prediction.h"
#include "worker/preprocessing.h"
#include "worker/training_data.h"
#include "worker/training_data_flags.h"

ABSL_FLAG(std::string, checkpoint, "",
          "Checkpoint file, or folder of checkpoints (the newest valid one of each series).");
ABSL_FLAG(std::string, output, "", "export: where to write the ONNX model.");
ABSL_FLAG(int, count, 10, "predict: the first N Fashion-MNIST test images.");
ABSL_FLAG(std::string, input, "",
          "predict: a .npy file of float32 NCHW images at the model's input resolution "
          "(what the ONNX model takes) instead of test images.");
ABSL_FLAG(std::string, image, "",
          "predict: a JPEG or PNG file to classify (repeat the flag for several): the top "
          "class with its probability and the top_k most probable, by class name when the "
          "model carries them. Evaluation preprocessing: central crop of 87.5%, resize to "
          "the model's resolution, the training's default normalization.");
ABSL_FLAG(int, top_k, 5, "predict --image: how many of the most probable classes to show.");
ABSL_FLAG(bool, json, false, "predict/eval/status/inspect-data: print JSON.");
ABSL_FLAG(std::string, data_dir, "/usr/share/datasets/fashion-mnist",
          "predict: folder with the Fashion-MNIST IDX files; eval: the data set whose test "
          "split to evaluate on (IDX, CIFAR or image folder); inspect-data: the data "
          "set to inspect.");
ABSL_FLAG(std::string, data_format, "auto",
          "inspect-data: image_folder (DATA_DIR/{train,test|val}/<class>/*.jpg|png), cifar "
          "(CIFAR-10/100 binaries) or auto (cifar when DATA_DIR holds them); eval: also idx, "
          "and auto detects idx, cifar, image_folder in that order.");
ABSL_FLAG(std::string, check, "header",
          "inspect-data: header (read each image's header: fast) or decode (decode each "
          "image: also finds damaged pixel data).");
ABSL_FLAG(std::string, from_idx, "/usr/share/datasets/fashion-mnist",
          "convert-data: folder with the Fashion-MNIST IDX files to convert.");
ABSL_FLAG(std::string, to, "",
          "convert-data: image_folder_png, image_folder_jpeg (quality 95) or cifar (CIFAR-10 "
          "binaries, 28x28 centered on black in 32x32, gray replicated to RGB).");
ABSL_FLAG(int, max_per_class, 0,
          "convert-data: write only the first N images of each class per split (0: all).");
ABSL_FLAG(int, threads, 2, "Compute threads.");
ABSL_FLAG(std::string, ps_hosts, "",
          "status: comma-separated host:port of the parameter servers (default: the "
          "MOBILENET_CLUSTER variable's cluster.ps); export/predict/eval: read the model "
          "from these running servers instead of --checkpoint.");
ABSL_FLAG(double, watch, 0,
          "status: refresh every N seconds until interrupted (--watch alone: every 2 s); "
          "0: once.");
ABSL_FLAG(std::string, run_dir, "",
          "report: the run folder (deploy/run_local.sh's runs/<time>/) whose logs to chart.");
ABSL_FLAG(std::string, out, "",
          "report: where to write the HTML (default: RUN_DIR/report.html, or report.html "
          "with --ps_hosts); convert-data: the folder to write the data set into.");
ABSL_FLAG(double, poll_secs, 10,
          "report --ps_hosts: seconds between two polls of the servers' status.");
ABSL_FLAG(double, duration_secs, 0,
          "report --ps_hosts: stop after this many seconds (0: when training ends).");
ABSL_FLAG(std::string, weights, "raw",
          "export/predict/eval: raw (the trained weights) or ema (their exponential moving "
          "average, kept when training ran with --weight_ema_decay > 0).");
ABSL_FLAG(double, timeout_secs, 5,
          "status (and --ps_hosts loads): how long to wait for each parameter server.");

namespace mobilenet {
namespace {

constexpr char kUsage[] =
    "Usage: mobilenet-ctl <command> [flags]\n"
    "Commands:\n"
    "  export   --checkpoint PATH --output model.onnx   write the model as ONNX\n"
    "  predict  --checkpoint PATH [--count N | --input batch.npy] [--json]\n"
    "           print the logits of the first N test images or of an NCHW .npy batch\n"
    "  predict  --checkpoint PATH --image a.jpg [--image b.png ...] [--top_k 5] [--json]\n"
    "           classify image files: class name, probability and the top 5 per image\n"
    "  eval     --checkpoint PATH [--data_dir DIR] [--json]   test-set accuracy\n"
    "  status   --ps_hosts=h1:p1,h2:p2 [--json] [--watch[=SECONDS]]\n"
    "           the training cluster as its parameter servers report it (exit 1 when\n"
    "           none answers)\n"
    "  report   --run_dir DIR [--out DIR/report.html]   the run's training curves (test\n"
    "           accuracy and loss, images/s, staleness, step time) from its logs, as one\n"
    "           self-contained HTML page\n"
    "  report   --ps_hosts=h1:p1,... [--out report.html] [--poll_secs 10]\n"
    "           [--duration_secs S]   the same from a running cluster: polls the servers'\n"
    "           status and rewrites the page after each poll until training ends\n"
    "  inspect-data --data_dir DIR [--data_format=auto|image_folder|cifar]\n"
    "           [--check=header|decode] [--json]   images per class and split, image\n"
    "           sizes and encodings, and the files that cannot be read, with the reason\n"
    "  convert-data [--from_idx DIR] --to image_folder_png|image_folder_jpeg|cifar\n"
    "           --out DIR [--max_per_class N]   write Fashion-MNIST as an image folder or\n"
    "           CIFAR binaries (test data sets without downloading any)\n"
    "PATH: a checkpoint file, or a folder of checkpoints: a single-process run's\n"
    "--checkpoint_dir or the parameter servers' (the newest valid file of every shard).\n"
    "export/predict/eval take --ps_hosts=h1:p1,... instead of --checkpoint to read the\n"
    "current model from running parameter servers, and --weights=ema to use the average\n"
    "of the weights (training with --weight_ema_decay > 0) instead of the weights.\n"
    "Servers that identify their callers\n"
    "take a monitor's credentials: --tls_cert_file=DIR/monitor.crt\n"
    "--tls_key_file=DIR/monitor.key --tls_ca_file=DIR/ca.crt (deploy/make_certs.sh) and/or\n"
    "--auth_token_file=DIR/tokens/monitor.token.";

struct Loaded {
  LoadedModel model;
  WeightsKind weights = WeightsKind::kRaw;
  std::unique_ptr<MobileNetV1> net;
};

absl::StatusOr<std::vector<std::string>> StatusTargets();

// The current model of running parameter servers: the model configuration from their
// Status, the weights (or their average) and moving statistics pulled as a worker would.
absl::StatusOr<LoadedModel> LoadFromServers(const std::vector<std::string>& targets,
                                            WeightsKind weights) {
  const absl::Duration timeout = absl::Seconds(absl::GetFlag(FLAGS_timeout_secs));
  const auto statuses = QueryParameterServerStatus(targets, timeout, TransportSecurityFromFlags());
  for (const auto& status : statuses) {
    if (!status.ok()) return status.status();
  }
  LoadedModel model;
  ASSIGN_OR_RETURN(model.config, ParseModelConfigString(statuses[0]->model()));
  ASSIGN_OR_RETURN(ShardingPlan plan,
                   ShardingPlan::Create(model.config, static_cast<int>(targets.size())));
  GrpcParameterClientOptions options;
  options.rpc_timeout = std::max(timeout, absl::Seconds(30));
  options.patience = absl::ZeroDuration();
  options.security = TransportSecurityFromFlags();
  ASSIGN_OR_RETURN(std::unique_ptr<GrpcParameterClient> client,
                   GrpcParameterClient::Create(plan, targets, options));
  model.parameters.resize(plan.parameter_layout().total_size());
  model.state.resize(plan.state_layout().total_size());
  ASSIGN_OR_RETURN(ModelVersion version, client->Pull(absl::MakeSpan(model.parameters),
                                                      absl::MakeSpan(model.state), weights));
  model.global_step = version.global_step();
  model.files = targets;
  model.class_names.assign(statuses[0]->class_names().begin(), statuses[0]->class_names().end());
  const absl::Status names = CheckClassNames(model.class_names, model.config.num_classes);
  if (!names.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(targets[0], ": status: ", names.message()));
  }
  return model;
}

absl::StatusOr<Loaded> Load() {
  const std::string path = absl::GetFlag(FLAGS_checkpoint);
  Loaded l;
  absl::StatusOr<WeightsKind> weights = ParseWeightsKind(absl::GetFlag(FLAGS_weights));
  if (!weights.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--weights: ", weights.status().message()));
  }
  l.weights = *weights;
  if (!path.empty()) {
    ASSIGN_OR_RETURN(l.model, LoadModel(path, l.weights));
  } else if (!absl::GetFlag(FLAGS_ps_hosts).empty()) {
    ASSIGN_OR_RETURN(std::vector<std::string> targets, StatusTargets());
    ASSIGN_OR_RETURN(l.model, LoadFromServers(targets, l.weights));
  } else {
    return absl::InvalidArgumentError(
        "--checkpoint (a file or folder) or --ps_hosts (running parameter servers) is required");
  }
  ASSIGN_OR_RETURN(l.net, MobileNetV1::Create(l.model.config));
  return l;
}

// The index of the largest of row[0, k).
int ArgMax(const float* row, int k) {
  return static_cast<int>(std::max_element(row, row + k) - row);
}

PreprocessingConfig TestPreprocessing(const MobileNetConfig& config) {
  PreprocessingConfig pre;
  pre.output_height = pre.output_width = config.resolution;
  pre.output_channels = config.input_channels;
  return pre;
}

absl::Status Export() {
  const std::string output = absl::GetFlag(FLAGS_output);
  if (output.empty()) return absl::InvalidArgumentError("export: --output is required");
  ASSIGN_OR_RETURN(Loaded l, Load());
  ASSIGN_OR_RETURN(onnx::ModelProto model,
                   ExportOnnx(l.net->architecture(), l.net->parameter_layout(),
                              l.model.parameters.data(), l.net->state_layout(),
                              l.model.state.data()));
  RETURN_IF_ERROR(SetOnnxClassNames(l.model.class_names, l.model.config.num_classes, model));
  RETURN_IF_ERROR(WriteOnnx(output, model));
  printf("Wrote %s (global step %lld, %s weights, %s; %s)\n", output.c_str(),
         static_cast<long long>(l.model.global_step), WeightsKindName(l.weights),
         absl::StrJoin(l.model.files, ", ").c_str(),
         l.model.class_names.empty() ? "no class names known"
                                     : "class names in metadata_props \"class_names\"");
  return absl::OkStatus();
}

// Every --image value, in order: absl keeps only a repeated flag's last value, so main
// collects them all before parsing.
std::vector<std::string>& ImageFiles() {
  static std::vector<std::string> files;
  return files;
}

absl::Status PredictImageFiles(Loaded& l) {
  const std::vector<std::string>& files = ImageFiles();
  ASSIGN_OR_RETURN(const std::vector<ImagePrediction> predictions,
                   PredictImages(*l.net, l.model.parameters.data(), l.model.state.data(),
                                 l.model.class_names, files, absl::GetFlag(FLAGS_top_k)));
  const bool names_known = !l.model.class_names.empty();
  if (absl::GetFlag(FLAGS_json)) {
    fputs(FormatImagePredictionsJson(predictions, names_known, l.model.global_step,
                                     WeightsKindName(l.weights))
              .c_str(),
          stdout);
  } else {
    fputs(FormatImagePredictionsText(predictions, names_known).c_str(), stdout);
  }
  const int64_t failed = std::count_if(predictions.begin(), predictions.end(),
                                       [](const ImagePrediction& p) { return !p.status.ok(); });
  if (failed > 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%d of %d images could not be classified (see above)", failed, predictions.size()));
  }
  return absl::OkStatus();
}

absl::Status Predict() {
  ASSIGN_OR_RETURN(Loaded l, Load());
  if (!ImageFiles().empty()) {
    if (!absl::GetFlag(FLAGS_input).empty()) {
      return absl::InvalidArgumentError("predict: --image and --input exclude each other");
    }
    return PredictImageFiles(l);
  }
  const MobileNetConfig& c = l.model.config;
  const int64_t image_size = int64_t{c.resolution} * c.resolution * c.input_channels;
  std::vector<float> images;  // NHWC
  std::vector<int> labels;
  int n = 0;
  const std::string input = absl::GetFlag(FLAGS_input);
  if (!input.empty()) {
    ASSIGN_OR_RETURN(NpyArray array, ReadNpy(input));
    const std::vector<int64_t> want = {c.input_channels, c.resolution, c.resolution};
    if (array.shape.size() != 4 || array.shape[1] != want[0] || array.shape[2] != want[1] ||
        array.shape[3] != want[2] || array.shape[0] < 1) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: shape [%s] given; expected [N, %d, %d, %d] (float32 NCHW at the model's "
          "input resolution)",
          input, absl::StrJoin(array.shape, ", "), want[0], want[1], want[2]));
    }
    n = static_cast<int>(array.shape[0]);
    images.resize(n * image_size);
    const int hw = c.resolution * c.resolution;
    for (int b = 0; b < n; ++b) {
      for (int ch = 0; ch < c.input_channels; ++ch) {
        for (int p = 0; p < hw; ++p) {
          images[(b * hw + p) * c.input_channels + ch] =
              array.data[(static_cast<int64_t>(b) * c.input_channels + ch) * hw + p];
        }
      }
    }
  } else {
    const int count = absl::GetFlag(FLAGS_count);
    if (count < 1) return absl::InvalidArgumentError("predict: --count must be >= 1");
    ASSIGN_OR_RETURN(Dataset test, LoadFashionMnist(absl::GetFlag(FLAGS_data_dir),
                                                    DatasetSplit::kTest));
    ASSIGN_OR_RETURN(EvaluationReader reader,
                     EvaluationReader::Create(std::make_shared<const Dataset>(std::move(test)),
                                              TestPreprocessing(c), count));
    images.resize(reader.size() * image_size);
    labels.resize(reader.size());
    ASSIGN_OR_RETURN(n, reader.NextBatch(reader.size(), images.data(), labels.data()));
  }
  const int k = c.num_classes;
  std::vector<float> logits(static_cast<size_t>(n) * k);
  l.net->Infer(l.model.parameters.data(), l.model.state.data(), images.data(), n, logits.data());
  const bool json = absl::GetFlag(FLAGS_json);
  if (json) {
    printf("{\"global_step\": %lld, \"weights\": \"%s\", \"predictions\": [\n",
           static_cast<long long>(l.model.global_step), WeightsKindName(l.weights));
  }
  for (int i = 0; i < n; ++i) {
    const float* row = &logits[static_cast<size_t>(i) * k];
    const int best = ArgMax(row, k);
    std::vector<std::string> values;
    for (int j = 0; j < k; ++j) values.push_back(absl::StrFormat("%.6g", row[j]));
    if (json) {
      printf("  {\"index\": %d, \"predicted\": %d%s, \"logits\": [%s]}%s\n", i, best,
             labels.empty() ? "" : absl::StrCat(", \"label\": ", labels[i]).c_str(),
             absl::StrJoin(values, ", ").c_str(), i + 1 < n ? "," : "");
    } else {
      printf("%4d  predicted %d%s  logits %s\n", i, best,
             labels.empty() ? "" : absl::StrCat("  label ", labels[i]).c_str(),
             absl::StrJoin(values, " ").c_str());
    }
  }
  if (json) printf("]}\n");
  return absl::OkStatus();
}

absl::Status Eval() {
  ASSIGN_OR_RETURN(Loaded l, Load());
  const MobileNetConfig& c = l.model.config;
  TrainingDataOptions options;
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  ASSIGN_OR_RETURN(options.format, ParseTrainingDataFormat(absl::GetFlag(FLAGS_data_format)));
  RETURN_IF_ERROR(TrainingDataOptionsFromFlags(options));
  options.resolution = c.resolution;
  options.channels = c.input_channels;
  options.num_classes = c.num_classes;
  options.open_train = false;
  ASSIGN_OR_RETURN(TrainingData data, OpenTrainingData(options));
  if (!absl::GetFlag(FLAGS_json)) {
    for (const std::string& note : data.notes) fprintf(stderr, "%s\n", note.c_str());
  }
  ASSIGN_OR_RETURN(std::unique_ptr<EvaluationSource> reader, data.make_test_reader());
  const int batch = 256;
  const int k = c.num_classes;
  std::vector<float> images(static_cast<size_t>(batch) * c.resolution * c.resolution *
                            c.input_channels);
  std::vector<int> labels(batch);
  std::vector<float> logits(static_cast<size_t>(batch) * k);
  int64_t correct = 0, total = 0;
  while (true) {
    ASSIGN_OR_RETURN(int n, reader->NextBatch(batch, images.data(), labels.data()));
    if (n == 0) break;
    l.net->Infer(l.model.parameters.data(), l.model.state.data(), images.data(), n,
                 logits.data());
    for (int i = 0; i < n; ++i) {
      const float* row = &logits[static_cast<size_t>(i) * k];
      correct += ArgMax(row, k) == labels[i];
    }
    total += n;
  }
  const double accuracy = total ? static_cast<double>(correct) / total : 0;
  if (absl::GetFlag(FLAGS_json)) {
    printf(
        "{\"accuracy\": %.6f, \"correct\": %lld, \"examples\": %lld, \"global_step\": %lld, "
        "\"weights\": \"%s\"}\n",
        accuracy, static_cast<long long>(correct), static_cast<long long>(total),
        static_cast<long long>(l.model.global_step), WeightsKindName(l.weights));
  } else {
    printf("Test accuracy: %.2f%% (%lld/%lld) at global step %lld%s\n", 100 * accuracy,
           static_cast<long long>(correct), static_cast<long long>(total),
           static_cast<long long>(l.model.global_step),
           l.weights == WeightsKind::kAverage ? " (weight average)" : "");
  }
  return absl::OkStatus();
}

// The parameter servers' addresses from --ps_hosts, else from MOBILENET_CLUSTER.
absl::StatusOr<std::vector<std::string>> StatusTargets() {
  ClusterDescription given = ClusterDescriptionFromFlags(absl::GetFlag(FLAGS_ps_hosts), "", "", -1);
  if (!given.ps_hosts) {
    const char* env = getenv(kClusterEnvVariable);
    if (env != nullptr && env[0] != '\0') {
      ASSIGN_OR_RETURN(ClusterDescription from_env, ParseClusterJson(env));
      given.ps_hosts = from_env.ps_hosts;
      given.ps_hosts_source = from_env.ps_hosts_source;
    }
  }
  if (!given.ps_hosts) {
    return absl::InvalidArgumentError(absl::StrCat("status: --ps_hosts=host:port,... is required (or ",
                                                   kClusterEnvVariable, ")"));
  }
  std::vector<std::string> targets;
  for (size_t i = 0; i < given.ps_hosts->size(); ++i) {
    auto parsed = ParseHostPort((*given.ps_hosts)[i]);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(given.ps_hosts_source, " entry ", i, ": ", parsed.status().message()));
    }
    targets.push_back(parsed->ToString());
  }
  return targets;
}

absl::Status ShowStatus() {
  ASSIGN_OR_RETURN(std::vector<std::string> targets, StatusTargets());
  const double timeout = absl::GetFlag(FLAGS_timeout_secs);
  const double watch = absl::GetFlag(FLAGS_watch);
  if (!(timeout > 0)) return absl::InvalidArgumentError("status: --timeout_secs must be > 0");
  if (watch < 0) return absl::InvalidArgumentError("status: --watch must be >= 0");
  const bool json = absl::GetFlag(FLAGS_json);
  const bool clear = watch > 0 && !json && isatty(fileno(stdout)) == 1;
  while (true) {
    const auto responses =
        QueryParameterServerStatus(targets, absl::Seconds(timeout), TransportSecurityFromFlags());
    std::vector<ParameterServerReport> reports;
    for (size_t i = 0; i < targets.size(); ++i) reports.push_back({targets[i], responses[i]});
    const absl::Time now = absl::Now();
    if (json) {
      printf("%s\n", FormatClusterStatusJson(reports, now).c_str());
    } else {
      if (clear) printf("\033[H\033[2J");  // home, clear screen
      printf("%s%s", watch > 0 ? absl::StrCat(absl::FormatTime("%Y-%m-%d %H:%M:%S", now,
                                                               absl::LocalTimeZone()),
                                              "\n").c_str()
                               : "",
             FormatClusterStatusText(reports, now).c_str());
      if (watch > 0 && !clear) printf("\n");
    }
    fflush(stdout);
    if (watch <= 0) {
      if (SummarizeCluster(reports).servers_answering == 0) {
        return absl::UnavailableError("no parameter server answered");
      }
      break;
    }
    absl::SleepFor(absl::Seconds(watch));
  }
  return absl::OkStatus();
}

// The curves of a running cluster: polls every server's Status, charts what it saw so
// far after each poll, until training ends, the servers stop answering, or
// --duration_secs.
absl::Status ReportFromServers() {
  ASSIGN_OR_RETURN(std::vector<std::string> targets, StatusTargets());
  const double timeout = absl::GetFlag(FLAGS_timeout_secs);
  const double poll = absl::GetFlag(FLAGS_poll_secs);
  const double duration = absl::GetFlag(FLAGS_duration_secs);
  if (!(timeout > 0)) return absl::InvalidArgumentError("report: --timeout_secs must be > 0");
  if (!(poll >= 0.1)) return absl::InvalidArgumentError("report: --poll_secs must be >= 0.1");
  if (!(duration >= 0)) return absl::InvalidArgumentError("report: --duration_secs must be >= 0");
  std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) out = "report.html";
  // Stop after this many polls in a row that no server answered (they exit at the end).
  constexpr int kSilentPolls = 3;
  StatusHistory history(absl::StrJoin(targets, ","));
  const absl::Time start = absl::Now();
  int silent = 0;
  while (true) {
    const auto responses =
        QueryParameterServerStatus(targets, absl::Seconds(timeout), TransportSecurityFromFlags());
    std::vector<std::optional<ps::v1::StatusResponse>> statuses;
    std::string errors;
    for (size_t i = 0; i < responses.size(); ++i) {
      if (responses[i].ok()) {
        statuses.push_back(*responses[i]);
      } else {
        statuses.push_back(std::nullopt);
        absl::StrAppend(&errors, "\n  ", targets[i], ": ", responses[i].status().ToString());
      }
    }
    const bool answered =
        std::any_of(statuses.begin(), statuses.end(), [](const auto& s) { return s.has_value(); });
    if (history.polls() == 0 && !answered) {
      return absl::UnavailableError(absl::StrCat("no parameter server answered:", errors));
    }
    history.Add(absl::Now(), statuses);
    silent = answered ? 0 : silent + 1;
    RETURN_IF_ERROR(WriteFileAtomically(out, RenderTrainingReport(history.run())));
    if (history.polls() == 1) {
      printf(
          "Training report: %s, rewritten every %g s until training ends (Ctrl-C stops; "
          "the file holds the last poll)\n",
          out.c_str(), poll);
      fflush(stdout);
    }
    std::string why;
    if (history.training_ended()) {
      why = "training has ended";
    } else if (silent >= kSilentPolls) {
      why = absl::StrCat("no server answered ", kSilentPolls, " polls in a row:", errors);
    } else if (duration > 0 && absl::Now() - start >= absl::Seconds(duration)) {
      why = absl::StrFormat("--duration_secs=%g reached", duration);
    }
    if (!why.empty()) {
      printf("Training report: %s (%d polls; stopped: %s)\n", out.c_str(), history.polls(),
             why.c_str());
      return absl::OkStatus();
    }
    absl::SleepFor(absl::Seconds(poll));
  }
}

absl::Status Report() {
  const std::string run_dir = absl::GetFlag(FLAGS_run_dir);
  if (run_dir.empty() && !absl::GetFlag(FLAGS_ps_hosts).empty()) return ReportFromServers();
  if (!absl::GetFlag(FLAGS_ps_hosts).empty()) {
    return absl::InvalidArgumentError("report: --run_dir or --ps_hosts, not both");
  }
  if (run_dir.empty()) {
    return absl::InvalidArgumentError(
        "report: --run_dir (a run folder's logs) or --ps_hosts (running servers) is required");
  }
  std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) out = absl::StrCat(run_dir, "/report.html");
  RETURN_IF_ERROR(WriteTrainingReport(run_dir, out));
  printf("Training report: %s\n", out.c_str());
  return absl::OkStatus();
}

absl::Status InspectDataSet() {
  ASSIGN_OR_RETURN(const DataFormat format, ParseDataFormat(absl::GetFlag(FLAGS_data_format)));
  const std::string check = absl::GetFlag(FLAGS_check);
  if (check != "header" && check != "decode") {
    return absl::InvalidArgumentError(
        absl::StrCat("inspect-data: --check must be header or decode, got \"", check, "\""));
  }
  ASSIGN_OR_RETURN(const DataInspection inspection,
                   InspectData(absl::GetFlag(FLAGS_data_dir), format,
                               check == "decode" ? ImageCheck::kDecode : ImageCheck::kHeader));
  if (absl::GetFlag(FLAGS_json)) {
    printf("%s\n", FormatInspectionJson(inspection).c_str());
  } else {
    printf("%s", FormatInspectionText(inspection).c_str());
  }
  return absl::OkStatus();
}

absl::Status ConvertData() {
  ASSIGN_OR_RETURN(const ConversionTarget target, ParseConversionTarget(absl::GetFlag(FLAGS_to)));
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return absl::InvalidArgumentError("convert-data: --out DIR is required");
  ASSIGN_OR_RETURN(const ConversionCounts counts,
                   ConvertFashionMnist(absl::GetFlag(FLAGS_from_idx), target, out,
                                       absl::GetFlag(FLAGS_max_per_class)));
  printf("Wrote %d train and %d test images to %s as %s\n", counts.train, counts.test, out.c_str(),
         absl::GetFlag(FLAGS_to).c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace mobilenet

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(mobilenet::kUsage);
  // "--watch" alone means every 2 seconds (a non-boolean flag needs a value otherwise).
  std::vector<char*> argv_copy(argv, argv + argc);
  static char watch_default[] = "--watch=2";
  for (char*& arg : argv_copy) {
    if (std::strcmp(arg, "--watch") == 0 || std::strcmp(arg, "-watch") == 0) arg = watch_default;
  }
  // Every --image (absl keeps only the last).
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    for (absl::string_view name : {"--image", "-image"}) {
      if (arg == name && i + 1 < argc) {
        mobilenet::ImageFiles().push_back(argv[i + 1]);
      } else if (absl::StartsWith(arg, absl::StrCat(name, "="))) {
        mobilenet::ImageFiles().push_back(std::string(arg.substr(name.size() + 1)));
      }
    }
  }
  // --help lists the flags of this file (absl's default looks for <binary>.cc).
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view path) {
    return absl::EndsWith(path, "/ctl_main.cc") || mobilenet::IsSecurityFlagsFile(path) ||
           mobilenet::IsTrainingDataFlagsFile(path);
  };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  absl::SetFlagsUsageConfig(usage_config);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv_copy.data());
  if (args.size() != 2) {
    fprintf(stderr, "%s\n", mobilenet::kUsage);
    return 2;
  }
  const int threads = absl::GetFlag(FLAGS_threads);
  if (threads < 1) {
    fprintf(stderr, "mobilenet-ctl: --threads must be >= 1\n");
    return 2;
  }
  mobilenet::SetComputeThreads(threads);
  const std::string command = args[1];
  absl::Status status;
  if (command == "export") {
    status = mobilenet::Export();
  } else if (command == "predict") {
    status = mobilenet::Predict();
  } else if (command == "eval") {
    status = mobilenet::Eval();
  } else if (command == "status") {
    status = mobilenet::ShowStatus();
  } else if (command == "report") {
    status = mobilenet::Report();
  } else if (command == "inspect-data") {
    status = mobilenet::InspectDataSet();
  } else if (command == "convert-data") {
    status = mobilenet::ConvertData();
  } else {
    fprintf(stderr, "mobilenet-ctl: unknown command \"%s\"\n%s\n", command.c_str(),
            mobilenet::kUsage);
    return 2;
  }
  if (!status.ok()) {
    fprintf(stderr, "mobilenet-ctl %s: %s\n", command.c_str(), status.ToString().c_str());
    return 1;
  }
  return 0;
}
