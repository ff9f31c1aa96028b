// mobilenet-transport-bench: the cost of moving the model between a worker and its
// parameter servers, and of applying it on a server.
//
// Transport (default): starts --num_ps parameter servers in this process on loopback TCP
// (127.0.0.1, real sockets) and times one training Pull plus one Push of the whole model
// (weights and batch-norm statistics each way) per iteration through GrpcParameterClient;
// prints the median seconds and the effective rate (bytes pulled + bytes pushed) / time.
// --wire_dtype picks the format of the weights and gradients on the wire (fp32, bf16,
// fp16; 16-bit pushes with error feedback); --wire_dtype=all times every format in turn
// against the same servers and prints them side by side: rates in float32-equivalent
// bytes (what the worker gets and gives), and the bytes the servers counted on the wire.
//
// Capacity (--capacity): full-model pushes per second that one parameter server core
// handles with one thread (ParameterServerCore::Push: validation, the all-or-nothing
// RMSprop apply, the ledger; no transport), and how many workers that serves at a given
// worker step time.
//
// With --metrics, either mode also measures what Prometheus metrics cost. Transport: each
// in-process parameter server gets what mobilenet-ps --metrics_address gives it
// (metrics/ps_metrics_endpoint.h: a /metrics endpoint on 127.0.0.1:0 serving its core's
// metrics, and the gRPC interceptor counting its calls). Capacity: the core's metrics on
// an endpoint (the core counts for them whether or not they are served; what serving adds
// is scrapes taking the core's locks while it applies). In both, a thread scrapes every
// endpoint over HTTP (asking for gzip, as Prometheus does) --metrics_scrape_hz times a
// second during the timed iterations. The default, 10 per second, is 150 times as often
// as a 15 s scrape interval (Prometheus's own default is 1 min), so the difference with
// metrics off bounds the cost from above; --metrics_scrape_hz=0 leaves only the
// interceptor. The scrapes run in this process, so the CPU figure includes the scraping
// client's (small) share. The output says whether metrics were on and how many scrapes
// were made; any failed scrape fails the run.
//
//   mobilenet-transport-bench [--num_ps=2] [--iterations=10] [--wire_dtype=fp32|bf16|fp16|all]
//                             [--metrics] [--json]
//   mobilenet-transport-bench --capacity [--worker_step_seconds=1.5] [--metrics] [--json]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/benchmark_timing.h"
#include "common/float_conversion.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "metrics/metrics_scraper.h"
#include "metrics/ps_metrics_endpoint.h"
#include "parameter_server/core/parameter_server_core.h"
#include "parameter_server/core/sharding_plan.h"
#include "parameter_server/grpc_server.h"
#include "parameter_server/parameter_service.h"
#include "security/caller_authentication.h"
#include "security/security_flags.h"
#include "security/transport_security.h"
#include "worker/grpc_parameter_client.h"

ABSL_FLAG(double, alpha, 1.0, "Width multiplier");
ABSL_FLAG(int, resolution, 224, "Input height and width");
ABSL_FLAG(int, channels, 3, "Input channels");
ABSL_FLAG(int, classes, 1000, "Number of classes");
ABSL_FLAG(int, num_ps, 2, "Parameter servers (transport mode)");
ABSL_FLAG(int, warmup, 2, "Untimed iterations before measuring");
ABSL_FLAG(int, iterations, 10, "Timed iterations; the median is reported");
ABSL_FLAG(bool, capacity, false,
          "Measure full-model RMSprop applications per second on one server thread instead");
ABSL_FLAG(double, worker_step_seconds, 1.0,
          "Capacity mode: one worker's time per training step, for the number of workers one "
          "server can serve");
ABSL_FLAG(bool, json, false, "Print one JSON object instead of readable lines");
ABSL_FLAG(bool, metrics, false,
          "Serve each parameter server's Prometheus metrics as mobilenet-ps --metrics_address "
          "does, and scrape them while timing (see --metrics_scrape_hz)");
ABSL_FLAG(double, metrics_scrape_hz, 10,
          "With --metrics: scrapes of each server's /metrics per second during the timed "
          "iterations (far more often than Prometheus, to bound the cost from above); 0: none");
ABSL_FLAG(std::string, wire_dtype, "fp32",
          "Transport mode: the wire format of weights and gradients (fp32, bf16, fp16), or all "
          "of them side by side");
ABSL_FLAG(std::string, server_certs_dir, "",
          "Transport mode with transport security: a deploy/make_certs.sh folder whose "
          "ps-<i>.crt/.key (with TLS) and tokens/server.tokens (with tokens) the bench's own "
          "servers use; the client uses the --tls_*/--auth_token_file flags.");

namespace mobilenet {
namespace {

double Seconds(std::chrono::steady_clock::duration duration) {
  return std::chrono::duration<double>(duration).count();
}

MobileNetConfig ConfigFromFlags() {
  MobileNetConfig config;
  config.alpha = static_cast<float>(absl::GetFlag(FLAGS_alpha));
  config.resolution = absl::GetFlag(FLAGS_resolution);
  config.input_channels = absl::GetFlag(FLAGS_channels);
  config.num_classes = absl::GetFlag(FLAGS_classes);
  return config;
}

ParameterShardConfig ShardConfig() {
  ParameterShardConfig config;
  config.seed = 1;
  config.learning_rate.examples_per_epoch = 1281167;  // ImageNet
  return config;
}

absl::Status CheckScrapeRate(double hz) {
  if (!(hz >= 0 && hz <= 1000)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--metrics_scrape_hz=%g: expected 0 to 1000 scrapes per second", hz));
  }
  return absl::OkStatus();
}

// Scrapes the /metrics of every port on 127.0.0.1, `hz` rounds a second, on its own
// thread from Start until Stop, as a Prometheus server would (gzip asked for). A round
// that falls behind is not made up with a burst. Start and Stop from one thread.
class ScrapeLoop {
 public:
  ScrapeLoop(std::vector<int> ports, double hz) : ports_(std::move(ports)), hz_(hz) {}
  ~ScrapeLoop() { Stop().IgnoreError(); }

  void Start() {
    if (hz_ > 0 && !thread_.joinable()) thread_ = std::thread([this] { Run(); });
  }
  // Stops scraping; the first failed scrape's error, if any.
  absl::Status Stop() {
    if (thread_.joinable()) {
      stop_.Notify();
      thread_.join();
    }
    absl::MutexLock lock(&mu_);
    return error_;
  }
  // Scrapes made (one per endpoint and round) and the bytes they read, so far.
  int64_t scrapes() const { return scrapes_.load(); }
  int64_t bytes() const { return bytes_.load(); }

 private:
  void Run() {
    const absl::Duration period = absl::Seconds(1 / hz_);
    MetricsScrapeOptions options;
    options.accept_gzip = true;
    absl::Time next = absl::Now();
    do {
      for (int port : ports_) {
        absl::StatusOr<MetricsScrape> scrape = ScrapeMetrics("127.0.0.1", port, options);
        if (!scrape.ok()) {
          absl::MutexLock lock(&mu_);
          if (error_.ok()) error_ = scrape.status();
          continue;
        }
        scrapes_.fetch_add(1);
        bytes_.fetch_add(static_cast<int64_t>(scrape->body.size()));
      }
      next = std::max(next + period, absl::Now());
    } while (!stop_.WaitForNotificationWithTimeout(next - absl::Now()));
  }

  const std::vector<int> ports_;
  const double hz_;
  std::thread thread_;
  absl::Notification stop_;
  std::atomic<int64_t> scrapes_{0};
  std::atomic<int64_t> bytes_{0};
  absl::Mutex mu_;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

// Fails unless the endpoint on `port` serves the parameter server's own metrics and, when
// `with_calls`, the gRPC metrics of the calls made: what was measured is what is served.
absl::Status CheckServed(int port, bool with_calls) {
  ASSIGN_OR_RETURN(const MetricsScrape scrape, ScrapeMetrics("127.0.0.1", port));
  std::vector<std::string> names = {"mobilenet_ps_global_step"};
  if (with_calls) names.push_back("grpc_server_handled_total{");
  for (const std::string& name : names) {
    if (scrape.body.find(name) == std::string::npos) {
      return absl::InternalError(
          absl::StrCat("127.0.0.1:", port, "/metrics does not serve ", name));
    }
  }
  return absl::OkStatus();
}

// The JSON fields about metrics (without braces), and the readable line.
std::string MetricsJson(bool on, double hz, const ScrapeLoop& scrapes) {
  const int64_t n = scrapes.scrapes();
  return absl::StrFormat(
      "\"metrics\": %s, \"metrics_scrape_hz\": %g, \"metrics_scrapes\": %d, "
      "\"metrics_scrape_bytes\": %.0f",
      on ? "true" : "false", on ? hz : 0.0, n, n > 0 ? double(scrapes.bytes()) / n : 0.0);
}
std::string MetricsLine(bool on, double hz, const ScrapeLoop& scrapes) {
  if (!on) return "off";
  const int64_t n = scrapes.scrapes();
  return absl::StrFormat(
      "on: %d scrapes of /metrics while timing (%g/s per server, gzip, "
      "%.0f bytes each)",
      n, hz, n > 0 ? double(scrapes.bytes()) / n : 0.0);
}

absl::Status CheckIterations(int warmup, int iterations) {
  if (warmup < 0 || iterations < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--warmup=%d --iterations=%d: expected warmup >= 0 and iterations >= 1", warmup,
        iterations));
  }
  return absl::OkStatus();
}

// One wire format's figures over the timed iterations (medians; CPU and bytes per
// iteration).
struct TransportFigures {
  WireDtype dtype = WireDtype::kFloat32;
  double pull_seconds = 0;
  double push_seconds = 0;
  double total_seconds = 0;
  double cpu_seconds = 0;
  double wire_bytes = 0;  // both ways, as the servers counted them
};

// The formats --wire_dtype names: one, or every one for "all".
absl::StatusOr<std::vector<WireDtype>> DtypesFromFlag() {
  const std::string flag = absl::GetFlag(FLAGS_wire_dtype);
  if (flag == "all")
    return std::vector<WireDtype>{WireDtype::kFloat32, WireDtype::kBfloat16, WireDtype::kFloat16};
  absl::StatusOr<WireDtype> dtype = ParseWireDtype(flag);
  if (!dtype.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--wire_dtype: ", dtype.status().message(), ", or all"));
  }
  return std::vector<WireDtype>{*dtype};
}

// The bytes every server counted in and out so far.
int64_t ServerBytes(const std::vector<std::unique_ptr<ParameterServerCore>>& cores) {
  int64_t bytes = 0;
  for (const auto& core : cores) {
    const ps::v1::StatusResponse status = core->GetStatus();
    bytes += status.bytes_in() + status.bytes_out();
  }
  return bytes;
}

// Times `warmup` + `iterations` training pulls and pushes of the whole model through
// `client` (requests numbered from `first_request_id`); starts `scrapes` with the timing.
absl::StatusOr<TransportFigures> TimeTransport(
    GrpcParameterClient& client, const std::vector<std::unique_ptr<ParameterServerCore>>& cores,
    int64_t parameter_count, int64_t state_count, int warmup, int iterations,
    uint64_t first_request_id, ScrapeLoop& scrapes) {
  std::vector<float> parameters(parameter_count), state(state_count);
  // Gradients of several magnitudes, so 16-bit rounding has work to do.
  std::vector<float> gradients(parameter_count), batch_stats(state_count, 0.5f);
  for (int64_t i = 0; i < parameter_count; ++i) gradients[i] = 1e-4f * (1 + i % 97) / 97;
  std::vector<double> pull_seconds, push_seconds, total_seconds;
  double cpu_start = 0;
  int64_t bytes_start = 0;
  for (int it = 0; it < warmup + iterations; ++it) {
    if (it == warmup) {
      bytes_start = ServerBytes(cores);
      scrapes.Start();
      cpu_start = ProcessCpuSeconds();
    }
    const auto start = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(const ModelVersion version,
                     client.Pull(absl::MakeSpan(parameters), absl::MakeSpan(state),
                                 WeightsKind::kRaw, PullPurpose::kTraining));
    const auto pulled = std::chrono::steady_clock::now();
    PushRequest push;
    push.worker_id = 0;
    push.request_id = first_request_id + static_cast<uint64_t>(it);
    push.computed_from = version;
    push.example_count = 64;
    push.gradients = gradients;
    push.batch_stats = batch_stats;
    RETURN_IF_ERROR(client.Push(push).status());
    const auto pushed = std::chrono::steady_clock::now();
    if (it < warmup) continue;
    pull_seconds.push_back(Seconds(pulled - start));
    push_seconds.push_back(Seconds(pushed - pulled));
    total_seconds.push_back(Seconds(pushed - start));
  }
  TransportFigures figures;
  // Client and servers together: what one pull + push costs the machine.
  figures.cpu_seconds = (ProcessCpuSeconds() - cpu_start) / iterations;
  figures.wire_bytes = static_cast<double>(ServerBytes(cores) - bytes_start) / iterations;
  figures.pull_seconds = Median(pull_seconds);
  figures.push_seconds = Median(push_seconds);
  figures.total_seconds = Median(total_seconds);
  return figures;
}

// Every format's figures in one table (or one JSON object with a list).
void PrintSideBySide(const ShardingPlan& plan, int num_ps, const TransportSecurity& security,
                     double bytes_each_way, int iterations,
                     const std::vector<TransportFigures>& figures, bool json,
                     const std::string& metrics_json, const std::string& metrics_line) {
  if (json) {
    std::string formats;
    for (const TransportFigures& f : figures) {
      absl::StrAppend(
          &formats, formats.empty() ? "" : ", ",
          absl::StrFormat(
              "{\"wire_dtype\": \"%s\", \"median_seconds\": %.6f, "
              "\"median_pull_seconds\": %.6f, \"median_push_seconds\": %.6f, "
              "\"pull_gb_per_sec\": %.3f, \"push_gb_per_sec\": %.3f, "
              "\"wire_bytes_per_iteration\": %.0f, \"cpu_seconds_per_iteration\": %.6f}",
              WireDtypeName(f.dtype), f.total_seconds, f.pull_seconds, f.push_seconds,
              bytes_each_way / f.pull_seconds / 1e9, bytes_each_way / f.push_seconds / 1e9,
              f.wire_bytes, f.cpu_seconds));
    }
    absl::PrintF(
        "{\"mode\": \"transport\", \"model\": \"%s\", \"num_ps\": %d, "
        "\"bytes_each_way\": %.0f, \"iterations\": %d, \"transport_security\": \"%s\", "
        "\"formats\": [%s], %s}\n",
        plan.model(), num_ps, bytes_each_way, iterations, security.Describe(), formats,
        metrics_json);
    return;
  }
  absl::PrintF("model            %s\n", plan.model());
  absl::PrintF("parameter servers %d on 127.0.0.1 (gRPC over TCP, transport security: %s)\n",
               num_ps, security.Describe());
  absl::PrintF("payload          %.1f MB each way as float32; medians of %d iterations\n",
               bytes_each_way / 1e6, iterations);
  absl::PrintF(
      "rates in float32-equivalent GB/s (model bytes / time); wire MB as the servers "
      "counted them\n");
  absl::PrintF("%-6s %9s %9s %10s %10s %13s %12s\n", "format", "pull s", "push s", "pull GB/s",
               "push GB/s", "wire MB/step", "CPU s/step");
  for (const TransportFigures& f : figures) {
    absl::PrintF("%-6s %9.4f %9.4f %10.2f %10.2f %13.1f %12.4f\n", WireDtypeName(f.dtype),
                 f.pull_seconds, f.push_seconds, bytes_each_way / f.pull_seconds / 1e9,
                 bytes_each_way / f.push_seconds / 1e9, f.wire_bytes / 1e6, f.cpu_seconds);
  }
  absl::PrintF("metrics          %s\n", metrics_line);
}

absl::Status RunTransport() {
  const MobileNetConfig config = ConfigFromFlags();
  const int num_ps = absl::GetFlag(FLAGS_num_ps);
  const int warmup = absl::GetFlag(FLAGS_warmup);
  const int iterations = absl::GetFlag(FLAGS_iterations);
  const bool metrics = absl::GetFlag(FLAGS_metrics);
  const double scrape_hz = absl::GetFlag(FLAGS_metrics_scrape_hz);
  RETURN_IF_ERROR(CheckIterations(warmup, iterations));
  RETURN_IF_ERROR(CheckScrapeRate(scrape_hz));
  ASSIGN_OR_RETURN(const std::vector<WireDtype> dtypes, DtypesFromFlag());
  ASSIGN_OR_RETURN(const ShardingPlan plan, ShardingPlan::Create(config, num_ps));

  std::vector<std::unique_ptr<ParameterServerCore>> cores;
  // Empty without --metrics. Declared before the servers, so destroyed after them.
  std::vector<std::unique_ptr<ParameterServerMetricsEndpoint>> endpoints;
  std::vector<int> metrics_ports;
  std::vector<std::unique_ptr<ParameterService>> services;
  std::vector<StartedServer> servers;
  std::vector<std::string> addresses;
  const TransportSecurity client_security = TransportSecurityFromFlags();
  const std::string certs_dir = absl::GetFlag(FLAGS_server_certs_dir);
  if (client_security.enabled() && certs_dir.empty()) {
    return absl::InvalidArgumentError(
        "with transport security, --server_certs_dir must name the servers' certificates");
  }
  std::vector<std::unique_ptr<CallerAuthenticator>> authenticators;
  for (int i = 0; i < num_ps; ++i) {
    TransportSecurity server_security;
    if (client_security.tls()) {
      server_security.tls_cert_file = absl::StrCat(certs_dir, "/ps-", i, ".crt");
      server_security.tls_key_file = absl::StrCat(certs_dir, "/ps-", i, ".key");
      server_security.tls_ca_file = client_security.tls_ca_file;
    }
    if (client_security.tokens()) {
      server_security.auth_token_file = absl::StrCat(certs_dir, "/tokens/server.tokens");
    }
    RETURN_IF_ERROR(CheckTransportSecurity(server_security));
    ASSIGN_OR_RETURN(std::unique_ptr<CallerAuthenticator> authenticator,
                     CallerAuthenticator::Create(server_security));
    CoreOptions options;
    options.shard_index = i;
    ASSIGN_OR_RETURN(std::unique_ptr<ParameterServerCore> core,
                     ParameterServerCore::Create(plan, ShardConfig(), options));
    services.push_back(std::make_unique<ParameterService>(core.get(), authenticator.get()));
    std::vector<grpc::experimental::ServerInterceptorFactoryInterface*> interceptors;
    if (metrics) {
      ASSIGN_OR_RETURN(std::unique_ptr<ParameterServerMetricsEndpoint> endpoint,
                       ParameterServerMetricsEndpoint::Start("127.0.0.1:0", core.get()));
      interceptors.push_back(endpoint->interceptor());
      metrics_ports.push_back(endpoint->port());
      endpoints.push_back(std::move(endpoint));
    }
    const int message_limit = MessageLimitForPayload(plan.shard_bytes(i));
    cores.push_back(std::move(core));
    authenticators.push_back(std::move(authenticator));
    ASSIGN_OR_RETURN(StartedServer server,
                     StartGrpcServer("127.0.0.1:0", {services.back().get()},
                                     ParameterServerLimits(message_limit, /*num_workers=*/1),
                                     ServerCredentialsFor(server_security),
                                     /*reflection=*/true, interceptors));
    addresses.push_back(absl::StrCat("127.0.0.1:", server.port));
    servers.push_back(std::move(server));
  }
  const int64_t parameter_count = plan.parameter_layout().total_size();
  const int64_t state_count = plan.state_layout().total_size();
  ScrapeLoop scrapes(metrics_ports, scrape_hz);
  std::vector<TransportFigures> figures;
  for (size_t f = 0; f < dtypes.size(); ++f) {
    GrpcParameterClientOptions client_options;
    client_options.worker_id = 0;
    client_options.security = client_security;
    client_options.push_dtype = dtypes[f];
    client_options.pull_dtype = dtypes[f];
    ASSIGN_OR_RETURN(std::unique_ptr<GrpcParameterClient> client,
                     GrpcParameterClient::Create(plan, addresses, client_options));
    ASSIGN_OR_RETURN(
        TransportFigures measured,
        TimeTransport(*client, cores, parameter_count, state_count, warmup, iterations,
                      /*first_request_id=*/static_cast<uint64_t>(f) * 1000000 + 1, scrapes));
    measured.dtype = dtypes[f];
    figures.push_back(measured);
  }
  RETURN_IF_ERROR(scrapes.Stop());
  for (int port : metrics_ports) RETURN_IF_ERROR(CheckServed(port, /*with_calls=*/true));
  for (StartedServer& server : servers) server.server->Shutdown();

  const double bytes_each_way = static_cast<double>(parameter_count + state_count) * sizeof(float);
  const bool json = absl::GetFlag(FLAGS_json);
  if (figures.size() > 1) {
    PrintSideBySide(plan, num_ps, client_security, bytes_each_way, iterations, figures, json,
                    MetricsJson(metrics, scrape_hz, scrapes),
                    MetricsLine(metrics, scrape_hz, scrapes));
    return absl::OkStatus();
  }
  const TransportFigures& only = figures.front();
  const double median = only.total_seconds;
  const double gbps = 2 * bytes_each_way / median / 1e9;
  if (json) {
    absl::PrintF(
        "{\"mode\": \"transport\", \"model\": \"%s\", \"num_ps\": %d, \"floats\": %d, "
        "\"bytes_each_way\": %.0f, \"iterations\": %d, \"median_seconds\": %.6f, "
        "\"median_pull_seconds\": %.6f, \"median_push_seconds\": %.6f, "
        "\"effective_gb_per_sec\": %.3f, \"cpu_seconds_per_iteration\": %.6f, "
        "\"wire_dtype\": \"%s\", \"wire_bytes_per_iteration\": %.0f, "
        "\"transport_security\": \"%s\", %s}\n",
        plan.model(), num_ps, parameter_count + state_count, bytes_each_way, iterations, median,
        only.pull_seconds, only.push_seconds, gbps, only.cpu_seconds, WireDtypeName(only.dtype),
        only.wire_bytes, client_security.Describe(), MetricsJson(metrics, scrape_hz, scrapes));
  } else {
    absl::PrintF("model            %s\n", plan.model());
    absl::PrintF("parameter servers %d on 127.0.0.1 (gRPC over TCP, transport security: %s)\n",
                 num_ps, client_security.Describe());
    absl::PrintF("payload          %.1f MB each way as float32 (%d floats)\n", bytes_each_way / 1e6,
                 parameter_count + state_count);
    absl::PrintF("wire format      %s (%.1f MB on the wire per pull + push)\n",
                 WireDtypeName(only.dtype), only.wire_bytes / 1e6);
    absl::PrintF("pull + push      %.4f s median of %d (pull %.4f s, push %.4f s)\n", median,
                 iterations, only.pull_seconds, only.push_seconds);
    absl::PrintF("effective rate   %.2f GB/s ((pulled + pushed float32 bytes) / time)\n", gbps);
    absl::PrintF("CPU              %.4f s per pull + push (client and servers, all threads)\n",
                 only.cpu_seconds);
    absl::PrintF("metrics          %s\n", MetricsLine(metrics, scrape_hz, scrapes));
  }
  return absl::OkStatus();
}

absl::Status RunCapacity() {
  const MobileNetConfig config = ConfigFromFlags();
  const int warmup = absl::GetFlag(FLAGS_warmup);
  const int iterations = absl::GetFlag(FLAGS_iterations);
  const double step_seconds = absl::GetFlag(FLAGS_worker_step_seconds);
  const bool metrics = absl::GetFlag(FLAGS_metrics);
  const double scrape_hz = absl::GetFlag(FLAGS_metrics_scrape_hz);
  RETURN_IF_ERROR(CheckIterations(warmup, iterations));
  RETURN_IF_ERROR(CheckScrapeRate(scrape_hz));
  if (!(step_seconds > 0)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--worker_step_seconds=%g: expected > 0", step_seconds));
  }
  ASSIGN_OR_RETURN(const ShardingPlan plan, ShardingPlan::Create(config, 1));
  ASSIGN_OR_RETURN(std::unique_ptr<ParameterServerCore> core,
                   ParameterServerCore::Create(plan, ShardConfig(), CoreOptions()));
  std::unique_ptr<ParameterServerMetricsEndpoint> endpoint;  // null without --metrics
  std::vector<int> metrics_ports;
  if (metrics) {
    ASSIGN_OR_RETURN(endpoint, ParameterServerMetricsEndpoint::Start("127.0.0.1:0", core.get()));
    metrics_ports.push_back(endpoint->port());
  }
  const ParameterShard& shard = core->shard();
  // A push as the server receives it, handled whole by the core: validation (sizes, ids,
  // finite values), the all-or-nothing RMSprop apply, the moving averages, the ledger.
  const std::vector<float> gradients(shard.parameter_count(), 1e-4f);
  const std::vector<float> batch_stats(shard.state_count(), 0.5f);
  ps::v1::PushRequest push;
  push.set_plan_fingerprint(plan.fingerprint());
  push.set_worker_id(0);
  push.set_example_count(64);
  push.set_gradients(reinterpret_cast<const char*>(gradients.data()),
                     gradients.size() * sizeof(float));
  push.set_batch_stats(reinterpret_cast<const char*>(batch_stats.data()),
                       batch_stats.size() * sizeof(float));
  ps::v1::PushResponse response;
  std::vector<double> seconds;
  ScrapeLoop scrapes(metrics_ports, scrape_hz);
  for (int it = 0; it < warmup + iterations; ++it) {
    if (it == warmup) scrapes.Start();
    push.set_request_id(static_cast<uint64_t>(it + 1));
    push.set_computed_from_version(response.version());
    const auto start = std::chrono::steady_clock::now();
    RETURN_IF_ERROR(core->Push(Caller::Trusted(), push, response));
    const auto end = std::chrono::steady_clock::now();
    if (it >= warmup) seconds.push_back(Seconds(end - start));
  }
  RETURN_IF_ERROR(scrapes.Stop());
  for (int port : metrics_ports) RETURN_IF_ERROR(CheckServed(port, /*with_calls=*/false));
  const double median = Median(seconds);
  const double per_second = 1.0 / median;
  const double workers = per_second * step_seconds;
  if (absl::GetFlag(FLAGS_json)) {
    absl::PrintF(
        "{\"mode\": \"capacity\", \"model\": \"%s\", \"floats\": %d, \"threads\": 1, "
        "\"iterations\": %d, \"median_apply_seconds\": %.6f, \"applications_per_sec\": %.2f, "
        "\"worker_step_seconds\": %.4f, \"workers_per_ps\": %.1f, %s}\n",
        plan.model(), shard.parameter_count() + shard.state_count(), iterations, median, per_second,
        step_seconds, workers, MetricsJson(metrics, scrape_hz, scrapes));
  } else {
    absl::PrintF("model            %s\n", plan.model());
    absl::PrintF("one RMSprop apply %.4f s median of %d (%d floats, 1 thread)\n", median,
                iterations, shard.parameter_count() + shard.state_count());
    absl::PrintF("capacity         %.1f full-model applications/s per PS core\n", per_second);
    absl::PrintF("workers per PS   %.1f at %.3g s per worker step (applications/s x step time)\n",
                workers, step_seconds);
    absl::PrintF("metrics          %s\n", MetricsLine(metrics, scrape_hz, scrapes));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace mobilenet

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Times one Pull plus one Push of the whole model through gRPC on loopback, or "
      "(--capacity) full-model RMSprop applications per second on one parameter server.");
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = absl::GetFlag(FLAGS_capacity) ? mobilenet::RunCapacity()
                                                            : mobilenet::RunTransport();
  if (!status.ok()) {
    std::fprintf(stderr, "mobilenet-transport-bench: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
