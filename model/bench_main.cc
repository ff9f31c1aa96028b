// mobilenet-bench: training and inference throughput of one MobileNet-V1 configuration
// on synthetic data, or (--describe) its per-layer table of parameters and mult-adds.
//
//   mobilenet-bench --alpha=1.0 --resolution=224 --batch=32 --threads=2 --json
//   mobilenet-bench --describe [--json]

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/benchmark_timing.h"
#include "model/initializer.h"
#include "model/layers/blas_kernels.h"
#include "model/layers/compute_threads.h"
#include "model/mobilenet_v1.h"
#include "model/model_description.h"

ABSL_FLAG(double, alpha, 1.0, "Width multiplier");
ABSL_FLAG(int, resolution, 224, "Input height and width");
ABSL_FLAG(int, channels, 3, "Input channels");
ABSL_FLAG(int, classes, 1000, "Number of classes");
ABSL_FLAG(int, batch, 32, "Images per step");
ABSL_FLAG(int, threads, 1, "Compute threads");
ABSL_FLAG(bool, shallow, false, "The shallow variant (five 14x14x512 blocks removed)");
ABSL_FLAG(bool, json, false, "Print one JSON object instead of readable lines");
ABSL_FLAG(bool, describe, false, "Print the layer table (params, mult-adds) and exit");
ABSL_FLAG(int, warmup, 2, "Untimed steps before measuring, for each of training and inference");
ABSL_FLAG(int, iterations, 10, "Timed steps; the median is reported");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the weights and the synthetic data");

namespace mobilenet {
namespace {

struct BenchOptions {
  MobileNetConfig config;
  int batch = 0;
  int threads = 0;
  int warmup = 0;
  int iterations = 0;
  uint64_t seed = 0;
};

absl::StatusOr<BenchOptions> ReadFlags() {
  BenchOptions o;
  o.config.alpha = static_cast<float>(absl::GetFlag(FLAGS_alpha));
  o.config.resolution = absl::GetFlag(FLAGS_resolution);
  o.config.input_channels = absl::GetFlag(FLAGS_channels);
  o.config.num_classes = absl::GetFlag(FLAGS_classes);
  o.config.shallow = absl::GetFlag(FLAGS_shallow);
  o.batch = absl::GetFlag(FLAGS_batch);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.warmup = absl::GetFlag(FLAGS_warmup);
  o.iterations = absl::GetFlag(FLAGS_iterations);
  o.seed = absl::GetFlag(FLAGS_seed);
  if (o.batch < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--batch must be >= 1, got ", o.batch));
  }
  if (o.threads < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--threads must be >= 1, got ", o.threads));
  }
  if (o.warmup < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--warmup must be >= 0, got ", o.warmup));
  }
  if (o.iterations < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--iterations must be >= 1, got ", o.iterations));
  }
  return o;
}

int64_t PeakRssBytes() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return int64_t{usage.ru_maxrss} * 1024;  // Linux reports kilobytes.
}

int PrintDescription(const BenchOptions& o, bool json) {
  absl::StatusOr<Architecture> arch = BuildArchitecture(o.config);
  if (!arch.ok()) {
    std::fprintf(stderr, "mobilenet-bench: %s\n", arch.status().ToString().c_str());
    return 1;
  }
  const ModelDescription d = Describe(*arch);
  if (json) {
    std::printf("%s\n", FormatDescriptionJson(d).c_str());
  } else {
    std::fputs(FormatDescriptionTable(d).c_str(), stdout);
  }
  return 0;
}

int Benchmark(const BenchOptions& o, bool json) {
  absl::StatusOr<std::unique_ptr<MobileNetV1>> created = MobileNetV1::Create(o.config);
  if (!created.ok()) {
    std::fprintf(stderr, "mobilenet-bench: %s\n", created.status().ToString().c_str());
    return 1;
  }
  MobileNetV1& net = **created;
  SetComputeThreads(o.threads);
  const ModelDescription description = Describe(net.architecture());

  std::vector<float> params(net.parameter_layout().total_size());
  InitializeAll(net.parameter_layout(), o.seed, params.data());
  std::vector<float> state(net.state_layout().total_size());
  InitializeAll(net.state_layout(), o.seed, state.data());
  std::vector<float> gradients(params.size());
  std::vector<float> batch_stats(state.size());

  std::mt19937_64 engine(o.seed);
  std::uniform_real_distribution<float> pixel(-1.0f, 1.0f);
  std::vector<float> images(int64_t{o.batch} * o.config.resolution * o.config.resolution *
                            o.config.input_channels);
  for (float& v : images) v = pixel(engine);
  std::vector<int> labels(o.batch);
  for (int& l : labels) l = static_cast<int>(engine() % o.config.num_classes);
  std::vector<float> logits(int64_t{o.batch} * o.config.num_classes);

  float loss = 0;
  const double train_seconds = MedianSeconds(o.warmup, o.iterations, [&] {
    loss = net.TrainStep(params.data(), images.data(), labels.data(), o.batch, 0.1f,
                         gradients.data(), batch_stats.data())
               .loss;
  });
  const double infer_seconds = MedianSeconds(o.warmup, o.iterations, [&] {
    net.Infer(params.data(), state.data(), images.data(), o.batch, logits.data());
  });
  const double train_ips = o.batch / train_seconds;
  const double infer_ips = o.batch / infer_seconds;
  const int64_t rss = PeakRssBytes();

  if (json) {
    std::printf(
        "{\"alpha\": %g, \"resolution\": %d, \"channels\": %d, \"classes\": %d, "
        "\"shallow\": %s, \"batch\": %d, \"threads\": %d, \"warmup\": %d, "
        "\"iterations\": %d, \"params\": %lld, \"macs\": %lld, \"trainable_floats\": %lld, "
        "\"train_step_seconds\": %.6f, \"infer_step_seconds\": %.6f, "
        "\"train_images_per_sec\": %.3f, \"infer_images_per_sec\": %.3f, "
        "\"peak_rss_bytes\": %lld, \"workspace_bytes\": %zu, \"loss\": %.6f}\n",
        o.config.alpha, o.config.resolution, o.config.input_channels, o.config.num_classes,
        o.config.shallow ? "true" : "false", o.batch, o.threads, o.warmup, o.iterations,
        static_cast<long long>(description.params),
        static_cast<long long>(description.mult_adds),
        static_cast<long long>(net.parameter_layout().total_size()), train_seconds,
        infer_seconds, train_ips, infer_ips, static_cast<long long>(rss),
        net.workspace_bytes(), loss);
  } else {
    std::printf("MobileNet-V1 alpha %g, %dx%dx%d, %d classes%s, batch %d, %d threads\n",
                o.config.alpha, o.config.resolution, o.config.resolution,
                o.config.input_channels, o.config.num_classes,
                o.config.shallow ? " (shallow)" : "", o.batch, o.threads);
    std::printf("OpenBLAS kernels: %s\n", BlasCoreName().c_str());
    std::printf("params (paper count): %.3fM, mult-adds: %.1fM per image\n",
                description.params / 1e6, description.mult_adds / 1e6);
    std::printf("training  (forward+backward): %8.2f images/s  (median step %.1f ms over %d)\n",
                train_ips, train_seconds * 1e3, o.iterations);
    std::printf("inference:                    %8.2f images/s  (median step %.1f ms over %d)\n",
                infer_ips, infer_seconds * 1e3, o.iterations);
    std::printf("peak RSS: %.1f MiB (activation workspace %.1f MiB)\n", rss / 1048576.0,
                net.workspace_bytes() / 1048576.0);
  }
  return 0;
}

}  // namespace
}  // namespace mobilenet

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Measures MobileNet-V1 training and inference throughput on synthetic data, or "
      "prints its layer table (--describe).");
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<mobilenet::BenchOptions> options = mobilenet::ReadFlags();
  if (!options.ok()) {
    std::fprintf(stderr, "mobilenet-bench: %s\n", options.status().ToString().c_str());
    return 1;
  }
  const bool json = absl::GetFlag(FLAGS_json);
  if (absl::GetFlag(FLAGS_describe)) return mobilenet::PrintDescription(*options, json);
  if (const std::string blas = mobilenet::SlowBlasKernelWarning(); !blas.empty()) {
    std::fprintf(stderr, "mobilenet-bench: warning: %s\n", blas.c_str());
  }
  return mobilenet::Benchmark(*options, json);
}
