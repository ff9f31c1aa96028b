#include "worker/grpc_parameter_client.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <tuple>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/gradient_ops.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "parameter_server/wire_payload.h"

namespace mobilenet {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "payloads are little-endian float32 copied as memory");

struct RetryPolicy {
  absl::Duration rpc_timeout;
  absl::Duration patience;  // zero: a single attempt
  absl::Duration initial_backoff;
  absl::Duration max_backoff;
};

// The policy of every call of a client with `options`.
RetryPolicy PolicyOf(const GrpcParameterClientOptions& options) {
  return {options.rpc_timeout, options.patience, options.initial_backoff, options.max_backoff};
}

// splitmix64: a small, good-enough source for backoff jitter.
uint64_t NextRandom(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The methods called through the generic stub.
const char kPullMethod[] = "/mobilenet.ps.v1.ParameterServer/Pull";
const char kPushMethod[] = "/mobilenet.ps.v1.ParameterServer/Push";

// Issues one asynchronous attempt of an RPC to server `index` on `context`, and calls
// `done` exactly once with its outcome.
using StartAttempt = std::function<void(int index, grpc::ClientContext* context,
                                        std::function<void(grpc::Status)> done)>;

// Completed attempts, handed from gRPC's threads to the waiting caller. Shared so that a
// callback finishing its unlock never touches freed memory.
struct CompletedAttempts {
  absl::Mutex mu;
  std::vector<std::pair<int, grpc::Status>> completed ABSL_GUARDED_BY(mu);
};

// Runs `start` for every server 0..names.size()-1 in parallel and waits for all, retrying
// transient failures of each server with jittered, capped exponential backoff until
// `policy.patience` has passed since the call began. Returns one status per server,
// errors prefixed with "parameter server <i> (<name>) <rpc>".
std::vector<absl::Status> CallAll(const std::vector<std::string>& names, absl::string_view rpc,
                                  const RetryPolicy& policy, uint64_t seed,
                                  const std::function<void(const std::string&)>& on_retry,
                                  const StartAttempt& start) {
  const int count = static_cast<int>(names.size());
  const absl::Time begin = absl::Now();
  const absl::Time give_up = begin + policy.patience;
  auto queue = std::make_shared<CompletedAttempts>();
  std::vector<absl::Status> results(count);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts(count);
  std::vector<int> attempts(count, 0);
  std::vector<absl::Time> next_attempt(count, begin);
  std::vector<bool> in_flight(count, false), finished(count, false);
  int remaining = count;
  const auto prefix = [&](int i) {
    return absl::StrFormat("parameter server %d (%s) %s", i, names[i], rpc);
  };
  while (remaining > 0) {
    absl::Time now = absl::Now();
    absl::Time wake = absl::InfiniteFuture();
    for (int i = 0; i < count; ++i) {
      if (finished[i] || in_flight[i]) continue;
      if (next_attempt[i] > now) {
        wake = std::min(wake, next_attempt[i]);
        continue;
      }
      contexts[i] = std::make_unique<grpc::ClientContext>();
      contexts[i]->set_deadline(absl::ToChronoTime(now + policy.rpc_timeout));
      in_flight[i] = true;
      ++attempts[i];
      start(i, contexts[i].get(), [queue, i](grpc::Status status) {
        absl::MutexLock lock(&queue->mu);
        queue->completed.emplace_back(i, std::move(status));
      });
    }
    std::vector<std::pair<int, grpc::Status>> completed;
    {
      absl::MutexLock lock(&queue->mu);
      const auto any = [&queue]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue->mu) {
        return !queue->completed.empty();
      };
      queue->mu.AwaitWithDeadline(absl::Condition(&any), wake);
      completed.swap(queue->completed);
    }
    now = absl::Now();
    for (auto& [i, status] : completed) {
      in_flight[i] = false;
      if (status.ok()) {
        finished[i] = true;
        --remaining;
        continue;
      }
      // Backoff before retry k = attempts - 1: min(max, initial * 2^k) * [0.5, 1].
      const double jitter =
          0.5 + 0.5 * static_cast<double>(NextRandom(seed) >> 11) / static_cast<double>(1ull << 53);
      const absl::Duration backoff =
          std::min(policy.max_backoff,
                   policy.initial_backoff * (1 << std::min(attempts[i] - 1, 20))) *
          jitter;
      if (IsTransient(status.error_code()) && now + backoff < give_up) {
        next_attempt[i] = now + backoff;
        if (on_retry) {
          on_retry(absl::StrFormat("%s: %s; retrying in %s (attempt %d)", prefix(i),
                                   status.error_message(), absl::FormatDuration(backoff),
                                   attempts[i] + 1));
        }
        continue;
      }
      finished[i] = true;
      --remaining;
      if (IsTransient(status.error_code()) && attempts[i] > 1) {
        results[i] = FromGrpcStatus(
            status, absl::StrFormat("%s: gave up after %d attempts over %s", prefix(i),
                                    attempts[i], absl::FormatDuration(now - begin)));
      } else {
        results[i] = FromGrpcStatus(status, prefix(i));
      }
    }
  }
  return results;
}

absl::Status FirstError(const std::vector<absl::Status>& statuses) {
  for (const absl::Status& status : statuses) {
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

grpc::ChannelArguments ChannelArgumentsFor(const GrpcParameterClientOptions& options) {
  grpc::ChannelArguments args;
  for (const auto& [name, value] : LargeMessageChannelArguments()) args.SetInt(name, value);
  // Notice a restarted server within about max_backoff (gRPC's default waits up to 120 s).
  const int initial_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(options.initial_backoff));
  const int max_ms = std::max<int64_t>(initial_ms, absl::ToInt64Milliseconds(options.max_backoff));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, initial_ms);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, std::min(max_ms, 1000));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_ms);
  return args;
}

ShardStatus ToShardStatus(const ps::v1::StatusResponse& response) {
  ShardStatus status;
  status.version = response.global_step();
  status.examples_seen = response.examples_seen();
  status.learning_rate = response.learning_rate();
  status.pushes_applied = response.pushes_applied();
  status.pushes_rejected_stale = response.pushes_rejected_stale();
  status.pushes_invalid = response.pushes_invalid();
  status.pushes_duplicate = response.pushes_duplicate();
  status.staleness_p50 = response.staleness_p50();
  status.staleness_p90 = response.staleness_p90();
  status.staleness_max = response.staleness_max();
  status.staleness_mean = response.staleness_mean();
  status.parameter_count = response.parameter_count();
  status.state_count = response.state_count();
  return status;
}

}  // namespace

bool IsTransient(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::CANCELLED;
}

GrpcParameterClient::GrpcParameterClient(const ShardingPlan& plan, std::vector<Shard> shards,
                                         const GrpcParameterClientOptions& options)
    : plan_(plan), shards_(std::move(shards)), options_(options) {
  absl::MutexLock lock(&mu_);
  seed_state_ = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())) ^
                reinterpret_cast<uintptr_t>(this);
}

absl::StatusOr<std::unique_ptr<GrpcParameterClient>> GrpcParameterClient::Create(
    const ShardingPlan& plan, std::vector<std::string> addresses,
    const GrpcParameterClientOptions& options) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (size_t i = 0; i < addresses.size(); ++i) {
    if (addresses[i].empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("parameter server %d has an empty address", i));
    }
    channels.push_back(grpc::CreateCustomChannel(
        addresses[i], grpc::InsecureChannelCredentials(), ChannelArgumentsFor(options)));
  }
  return CreateWithChannels(plan, std::move(channels), std::move(addresses), options);
}

absl::StatusOr<std::unique_ptr<GrpcParameterClient>> GrpcParameterClient::CreateWithChannels(
    const ShardingPlan& plan, std::vector<std::shared_ptr<grpc::Channel>> channels,
    std::vector<std::string> names, const GrpcParameterClientOptions& options) {
  if (static_cast<int>(channels.size()) != plan.num_shards() ||
      names.size() != channels.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%d parameter server addresses (%d names) for a plan of %d parameter servers",
        channels.size(), names.size(), plan.num_shards()));
  }
  if (options.rpc_timeout <= absl::ZeroDuration() || options.patience < absl::ZeroDuration() ||
      options.initial_backoff <= absl::ZeroDuration() ||
      options.max_backoff < options.initial_backoff) {
    return absl::InvalidArgumentError(
        "client options: expected rpc_timeout > 0, patience >= 0 and "
        "0 < initial_backoff <= max_backoff");
  }
  RetainPayloadMemory(
      (plan.parameter_layout().total_size() + plan.state_layout().total_size()) * sizeof(float));
  const auto route = [](const ParameterLayout& layout, const std::vector<TensorSlice>& slices)
      -> absl::StatusOr<Routing> {
    Routing routing;
    for (const TensorSlice& slice : slices) {
      ASSIGN_OR_RETURN(const TensorView* view, layout.Find(slice.tensor));
      const int64_t flat_offset = view->offset + slice.begin;
      if (!routing.segments.empty() &&
          routing.segments.back().flat_offset + routing.segments.back().size == flat_offset) {
        routing.segments.back().size += slice.size();  // adjacent in both buffers
      } else {
        routing.segments.push_back({flat_offset, routing.count, slice.size()});
      }
      routing.count += slice.size();
    }
    return routing;
  };
  std::vector<Shard> shards;
  for (int i = 0; i < plan.num_shards(); ++i) {
    Shard shard;
    shard.name = std::move(names[i]);
    shard.stub = ps::v1::ParameterServer::NewStub(channels[i]);
    shard.generic_stub = std::make_unique<grpc::GenericStub>(channels[i]);
    shard.channel = std::move(channels[i]);
    ASSIGN_OR_RETURN(shard.parameters, route(plan.parameter_layout(), plan.shard(i).parameters));
    ASSIGN_OR_RETURN(shard.state, route(plan.state_layout(), plan.shard(i).state));
    shards.push_back(std::move(shard));
  }
  return std::unique_ptr<GrpcParameterClient>(
      new GrpcParameterClient(plan, std::move(shards), options));
}

std::vector<std::string> GrpcParameterClient::Names() const {
  std::vector<std::string> names;
  for (const Shard& shard : shards_) names.push_back(shard.name);
  return names;
}

uint64_t GrpcParameterClient::NextSeed() {
  absl::MutexLock lock(&mu_);
  return NextRandom(seed_state_);
}

void GrpcParameterClient::set_progress(double images_per_sec, int64_t steps) {
  absl::MutexLock lock(&mu_);
  images_per_sec_ = images_per_sec;
  steps_ = steps;
}

absl::StatusOr<ModelVersion> GrpcParameterClient::Pull(absl::Span<float> parameters,
                                                       absl::Span<float> state) {
  const ParameterLayout& parameter_layout = plan_.parameter_layout();
  const ParameterLayout& state_layout = plan_.state_layout();
  if (static_cast<int64_t>(parameters.size()) != parameter_layout.total_size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("pull: parameter buffer holds %d floats, expected %d", parameters.size(),
                        parameter_layout.total_size()));
  }
  if (!state.empty() && static_cast<int64_t>(state.size()) != state_layout.total_size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("pull: state buffer holds %d floats, expected %d (or none)", state.size(),
                        state_layout.total_size()));
  }
  const int count = plan_.num_shards();
  std::vector<grpc::ByteBuffer> requests(count), responses(count);
  std::vector<bool> want_state(count);
  std::vector<int64_t> versions(count, 0);
  std::vector<uint64_t> incarnations(count, 0);
  for (int i = 0; i < count; ++i) {
    ps::v1::PullRequest request;
    request.set_plan_fingerprint(plan_.fingerprint());
    request.set_shard_index(i);
    want_state[i] = !state.empty() && shards_[i].state.count > 0;
    request.set_include_state(want_state[i]);
    request.set_worker_id(options_.worker_id);
    request.set_model(plan_.model());
    request.set_num_shards(count);
    bool own_buffer;
    const grpc::Status serialized = grpc::SerializationTraits<ps::v1::PullRequest>::Serialize(
        request, &requests[i], &own_buffer);
    if (!serialized.ok()) return FromGrpcStatus(serialized, "pull: serializing the request");
  }
  // Decodes a shard's PullResponse, copying its payloads from the received slices straight
  // into place (on gRPC's thread, so shards decode in parallel).
  const auto decode = [&](int i) -> absl::Status {
    const Shard& shard = shards_[i];
    WireReader reader(responses[i]);
    bool has_parameters = false, has_state = false;
    int number, wire_type;
    for (;;) {
      ASSIGN_OR_RETURN(const bool more, reader.NextField(number, wire_type));
      if (!more) break;
      if (number == ps::v1::PullResponse::kVersionFieldNumber && wire_type == kWireVarint) {
        ASSIGN_OR_RETURN(const uint64_t version, reader.ReadVarint());
        versions[i] = static_cast<int64_t>(version);
        continue;
      }
      if (number == ps::v1::PullResponse::kServerIncarnationFieldNumber &&
          wire_type == kWireFixed64) {
        ASSIGN_OR_RETURN(incarnations[i], reader.ReadFixed64());
        continue;
      }
      const bool is_parameters = number == ps::v1::PullResponse::kParametersFieldNumber;
      const bool is_state = number == ps::v1::PullResponse::kStateFieldNumber;
      if ((!is_parameters && !is_state) || wire_type != kWireLengthDelimited ||
          (is_state && !want_state[i])) {
        RETURN_IF_ERROR(reader.SkipValue(wire_type));
        continue;
      }
      const Routing& routing = is_parameters ? shard.parameters : shard.state;
      float* const target = is_parameters ? parameters.data() : state.data();
      ASSIGN_OR_RETURN(const uint64_t length, reader.ReadVarint());
      if (length != static_cast<uint64_t>(routing.count) * sizeof(float)) {
        return absl::InternalError(absl::StrFormat(
            "answered %d %s bytes, expected %d", length, is_parameters ? "parameter" : "state",
            routing.count * sizeof(float)));
      }
      for (const Segment& segment : routing.segments) {
        RETURN_IF_ERROR(reader.ReadBytes(segment.size * sizeof(float),
                                         reinterpret_cast<char*>(target + segment.flat_offset)));
      }
      has_parameters |= is_parameters;
      has_state |= is_state;
    }
    if (!has_parameters || (want_state[i] && !has_state)) {
      return absl::InternalError(absl::StrCat("answered without ",
                                              has_parameters ? "state" : "parameters"));
    }
    return absl::OkStatus();
  };
  const RetryPolicy policy = PolicyOf(options_);
  const std::vector<absl::Status> results = CallAll(
      Names(), "Pull", policy, NextSeed(), options_.on_retry,
      [&](int i, grpc::ClientContext* context, std::function<void(grpc::Status)> done) {
        shards_[i].generic_stub->UnaryCall(
            context, kPullMethod, grpc::StubOptions(), &requests[i], &responses[i],
            [&, i, done = std::move(done)](grpc::Status status) {
              done(status.ok() ? ToGrpcStatus(decode(i)) : status);
            });
      });
  RETURN_IF_ERROR(FirstError(results));
  ModelVersion version;
  version.shard_versions = std::move(versions);
  version.shard_incarnations = std::move(incarnations);
  return version;
}

absl::StatusOr<PushResult> GrpcParameterClient::Push(const PushRequest& request) {
  const ParameterLayout& parameter_layout = plan_.parameter_layout();
  const ParameterLayout& state_layout = plan_.state_layout();
  const int count = plan_.num_shards();
  if (static_cast<int64_t>(request.gradients.size()) != parameter_layout.total_size()) {
    return absl::InvalidArgumentError(absl::StrFormat("push: %d gradient values, expected %d",
                                                      request.gradients.size(),
                                                      parameter_layout.total_size()));
  }
  if (!request.batch_stats.empty() &&
      static_cast<int64_t>(request.batch_stats.size()) != state_layout.total_size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("push: %d batch statistics, expected %d or none",
                        request.batch_stats.size(), state_layout.total_size()));
  }
  if (static_cast<int>(request.computed_from.shard_versions.size()) != count) {
    return absl::InvalidArgumentError(
        absl::StrFormat("push: computed from %d shard versions, expected %d (one per shard)",
                        request.computed_from.shard_versions.size(), count));
  }
  // Checked here as a whole so that no server applies its part of a malformed push.
  for (const auto& [layout, values, what] :
       {std::make_tuple(&parameter_layout, request.gradients, "gradient"),
        std::make_tuple(&state_layout, request.batch_stats, "batch statistic")}) {
    const int64_t bad = FindNonFinite(values);
    if (bad < 0) continue;
    for (const TensorView& view : layout->views()) {
      if (bad < view.offset + view.size) {
        return absl::InvalidArgumentError(
            absl::StrFormat("push: %s for %s[%d] is %g; expected finite values", what, view.name,
                            bad - view.offset, values[bad]));
      }
    }
  }
  double images_per_sec;
  int64_t steps;
  {
    absl::MutexLock lock(&mu_);
    images_per_sec = images_per_sec_;
    steps = steps_;
  }
  // Each request is its small fields, then the payload fields whose bytes are slices of
  // the caller's buffers (not copied; Push returns only once gRPC has released them).
  BorrowedMemory borrowed;
  std::vector<grpc::ByteBuffer> requests(count), responses(count);
  for (int i = 0; i < count; ++i) {
    const Shard& shard = shards_[i];
    ps::v1::PushRequest fields;
    fields.set_plan_fingerprint(plan_.fingerprint());
    fields.set_shard_index(i);
    fields.set_worker_id(request.worker_id);
    fields.set_request_id(request.request_id);
    fields.set_computed_from_version(request.computed_from.shard_versions[i]);
    if (request.computed_from.shard_incarnations.size() == static_cast<size_t>(count)) {
      fields.set_server_incarnation(request.computed_from.shard_incarnations[i]);
    }
    fields.set_example_count(request.example_count);
    fields.set_worker_images_per_sec(images_per_sec);
    fields.set_worker_steps(steps);
    fields.set_model(plan_.model());
    fields.set_num_shards(count);
    std::string header = fields.SerializeAsString();
    AppendLengthDelimitedHeader(ps::v1::PushRequest::kGradientsFieldNumber,
                                shard.parameters.count * sizeof(float), header);
    std::vector<grpc::Slice> slices;
    slices.emplace_back(header);
    for (const Segment& segment : shard.parameters.segments) {
      slices.push_back(borrowed.Borrow(request.gradients.data() + segment.flat_offset,
                                       segment.size * sizeof(float)));
    }
    if (!request.batch_stats.empty() && shard.state.count > 0) {
      std::string stats_header;
      AppendLengthDelimitedHeader(ps::v1::PushRequest::kBatchStatsFieldNumber,
                                  shard.state.count * sizeof(float), stats_header);
      slices.emplace_back(stats_header);
      for (const Segment& segment : shard.state.segments) {
        slices.push_back(borrowed.Borrow(request.batch_stats.data() + segment.flat_offset,
                                         segment.size * sizeof(float)));
      }
    }
    requests[i] = grpc::ByteBuffer(slices.data(), slices.size());
  }
  const RetryPolicy policy = PolicyOf(options_);
  // A retry resends the same request (same request_id): applied at most once.
  std::vector<absl::Status> results = CallAll(
      Names(), "Push", policy, NextSeed(), options_.on_retry,
      [&](int i, grpc::ClientContext* context, std::function<void(grpc::Status)> done) {
        shards_[i].generic_stub->UnaryCall(context, kPushMethod, grpc::StubOptions(),
                                           &requests[i], &responses[i], std::move(done));
      });
  requests.clear();
  borrowed.WaitUntilReleased();
  std::vector<ps::v1::PushResponse> decoded(count);
  for (int i = 0; i < count; ++i) {
    if (!results[i].ok()) continue;
    const grpc::Status parsed =
        grpc::SerializationTraits<ps::v1::PushResponse>::Deserialize(&responses[i], &decoded[i]);
    if (!parsed.ok()) {
      results[i] = absl::InternalError(absl::StrFormat(
          "parameter server %d (%s) Push: malformed response: %s", i, shards_[i].name,
          parsed.error_message()));
    }
  }
  PushResult result;
  for (int i = 0; i < count; ++i) {
    if (!results[i].ok()) {
      result.version.shard_versions.push_back(-1);
      continue;
    }
    if (i == 0) result.learning_rate = decoded[i].learning_rate();
    result.max_staleness = std::max(result.max_staleness, decoded[i].staleness());
    result.version.shard_versions.push_back(decoded[i].version());
  }
  RETURN_IF_ERROR(FirstError(results));
  return result;
}

std::vector<absl::StatusOr<ps::v1::StatusResponse>> GrpcParameterClient::GetShardStatuses() {
  const int count = plan_.num_shards();
  const ps::v1::StatusRequest request;
  std::vector<ps::v1::StatusResponse> responses(count);
  const RetryPolicy policy = PolicyOf(options_);
  const std::vector<absl::Status> results = CallAll(
      Names(), "GetStatus", policy, NextSeed(), options_.on_retry,
      [&](int i, grpc::ClientContext* context, std::function<void(grpc::Status)> done) {
        shards_[i].stub->async()->GetStatus(context, &request, &responses[i], std::move(done));
      });
  std::vector<absl::StatusOr<ps::v1::StatusResponse>> statuses;
  for (int i = 0; i < count; ++i) {
    if (results[i].ok()) {
      statuses.push_back(std::move(responses[i]));
    } else {
      statuses.push_back(results[i]);
    }
  }
  return statuses;
}

absl::StatusOr<ParameterServerStatus> GrpcParameterClient::GetStatus() {
  ParameterServerStatus status;
  for (absl::StatusOr<ps::v1::StatusResponse>& response : GetShardStatuses()) {
    if (!response.ok()) return response.status();
    status.shards.push_back(ToShardStatus(*response));
  }
  return status;
}

absl::Status GrpcParameterClient::ReportEvaluation(int32_t worker_id,
                                                   const EvaluationResult& result) {
  ps::v1::EvaluationReport report;
  report.set_plan_fingerprint(plan_.fingerprint());
  report.set_worker_id(worker_id);
  report.set_global_step(result.global_step);
  report.set_examples(result.examples);
  report.set_correct(result.correct);
  report.set_loss(result.loss);
  report.set_model(plan_.model());
  report.set_num_shards(plan_.num_shards());
  std::vector<ps::v1::EvaluationAck> acks(plan_.num_shards());
  const RetryPolicy policy = PolicyOf(options_);
  return FirstError(CallAll(
      Names(), "ReportEvaluation", policy, NextSeed(), options_.on_retry,
      [&](int i, grpc::ClientContext* context, std::function<void(grpc::Status)> done) {
        shards_[i].stub->async()->ReportEvaluation(context, &report, &acks[i], std::move(done));
      }));
}

absl::Status GrpcParameterClient::Finish(int32_t worker_id, bool training_complete) {
  ps::v1::FinishRequest request;
  request.set_plan_fingerprint(plan_.fingerprint());
  request.set_worker_id(worker_id);
  request.set_training_complete(training_complete);
  request.set_model(plan_.model());
  request.set_num_shards(plan_.num_shards());
  std::vector<ps::v1::FinishResponse> responses(plan_.num_shards());
  const RetryPolicy policy = PolicyOf(options_);
  return FirstError(CallAll(
      Names(), "Finish", policy, NextSeed(), options_.on_retry,
      [&](int i, grpc::ClientContext* context, std::function<void(grpc::Status)> done) {
        shards_[i].stub->async()->Finish(context, &request, &responses[i], std::move(done));
      }));
}

std::vector<absl::StatusOr<ps::v1::StatusResponse>> QueryParameterServerStatus(
    const std::vector<std::string>& addresses, absl::Duration timeout) {
  GrpcParameterClientOptions options;
  std::vector<std::unique_ptr<ps::v1::ParameterServer::Stub>> stubs;
  for (const std::string& address : addresses) {
    stubs.push_back(ps::v1::ParameterServer::NewStub(grpc::CreateCustomChannel(
        address, grpc::InsecureChannelCredentials(), ChannelArgumentsFor(options))));
  }
  const ps::v1::StatusRequest request;
  std::vector<ps::v1::StatusResponse> responses(addresses.size());
  // One attempt: no patience.
  const RetryPolicy policy{timeout, absl::ZeroDuration(), options.initial_backoff,
                           options.max_backoff};
  const std::vector<absl::Status> results = CallAll(
      addresses, "GetStatus", policy, /*seed=*/1, /*on_retry=*/nullptr,
      [&](int i, grpc::ClientContext* context, std::function<void(grpc::Status)> done) {
        stubs[i]->async()->GetStatus(context, &request, &responses[i], std::move(done));
      });
  std::vector<absl::StatusOr<ps::v1::StatusResponse>> statuses;
  for (size_t i = 0; i < addresses.size(); ++i) {
    if (results[i].ok()) {
      statuses.push_back(std::move(responses[i]));
    } else {
      statuses.push_back(results[i]);
    }
  }
  return statuses;
}

}  // namespace mobilenet
