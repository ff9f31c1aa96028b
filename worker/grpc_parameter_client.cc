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
#include "parameter_server/core/payload_dtype.h"
#include "parameter_server/wire_payload.h"
#include "security/token_file.h"

namespace mobilenet {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "payloads are little-endian float32 copied as memory");

struct RetryPolicy {
  absl::Duration rpc_timeout;
  absl::Duration patience;  // zero: a single attempt
  absl::Duration initial_backoff;
  absl::Duration max_backoff;
  const std::atomic<bool>* stop = nullptr;  // see GrpcParameterClientOptions::stop
  std::string authorization;                // metadata of every attempt; empty: none
  // Each server's error settles that server only (a status query: every server answers
  // for itself); otherwise the first non-transient error decides the call.
  bool independent = false;
};

// The policy of every call of a client with `options`.
RetryPolicy PolicyOf(const GrpcParameterClientOptions& options, std::string authorization) {
  return {options.rpc_timeout, options.patience, options.initial_backoff,
          options.max_backoff, options.stop,     std::move(authorization)};
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

// What one call to every server came to: each server's result, and the first answer
// that retrying could not change, which decided the call for every server.
struct CallOutcome {
  std::vector<absl::Status> results;
  absl::Status decisive;

  // The error the call fails with: the decisive one, else the first server's error.
  absl::Status FirstError() const {
    if (!decisive.ok()) return decisive;
    for (const absl::Status& status : results) {
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
};

// Runs `start` for every server 0..names.size()-1 in parallel and waits for all, retrying
// transient failures of each server with jittered, capped exponential backoff until
// `policy.patience` has passed since the call began. Unless `policy.independent`, the
// first non-transient error decides the call: no server is tried again, and attempts
// still in flight are cancelled unless the error is ABORTED (a push refused by one server
// may still be applied by the others, which is fine to let finish). Errors are prefixed with
// "parameter server <i>
// (<name>) <rpc>". With `only` (one flag per server), just the flagged servers are called;
// the others' results stay OK.
CallOutcome CallAll(const std::vector<std::string>& names, absl::string_view rpc,
                    const RetryPolicy& policy, uint64_t seed,
                    const std::function<void(const std::string&)>& on_retry,
                    const std::function<void(absl::string_view, grpc::StatusCode)>& on_retry_cause,
                    const StartAttempt& start, const std::vector<bool>& only = {}) {
  const int count = static_cast<int>(names.size());
  const absl::Time begin = absl::Now();
  const absl::Time give_up = begin + policy.patience;
  auto queue = std::make_shared<CompletedAttempts>();
  CallOutcome outcome;
  outcome.results.resize(count);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts(count);
  std::vector<int> attempts(count, 0);
  std::vector<absl::Time> next_attempt(count, begin);
  std::vector<bool> in_flight(count, false), finished(count, false);
  int pending = count;  // servers whose last attempt has not come back or been settled
  for (int i = 0; i < static_cast<int>(only.size()) && i < count; ++i) {
    if (only[i]) continue;
    finished[i] = true;  // not asked in this call (its result stays OK)
    --pending;
  }
  const auto prefix = [&](int i) {
    return absl::StrFormat("parameter server %d (%s) %s", i, names[i], rpc);
  };
  // Settles every server not done yet once `decisive` decided the call; attempts in
  // flight are cancelled when `cancel`.
  const auto decide = [&](const absl::Status& decisive, bool cancel) {
    outcome.decisive = decisive;
    for (int j = 0; j < count; ++j) {
      if (finished[j]) continue;
      finished[j] = true;
      outcome.results[j] = absl::Status(
          decisive.code(), absl::StrFormat("%s: not tried again: %s", prefix(j), decisive.message()));
      if (in_flight[j]) {
        // Its completion still arrives (and is awaited: it refers to this call's state).
        if (cancel) contexts[j]->TryCancel();
      } else {
        --pending;
      }
    }
  };
  const auto stopped = [&policy] { return policy.stop != nullptr && policy.stop->load(); };
  const auto settle_stopped = [&](int i, absl::string_view last) {
    finished[i] = true;
    --pending;
    outcome.results[i] = absl::CancelledError(
        absl::StrCat(prefix(i), ": stopped on request; not tried again after: ", last));
  };
  while (pending > 0) {
    // A stop ends retries, not attempts: the first attempt (the push of the step that was
    // in progress is made after the stop) and the ones in flight still get their answer.
    if (stopped()) {
      for (int i = 0; i < count; ++i) {
        if (!finished[i] && !in_flight[i] && attempts[i] > 0) {
          settle_stopped(i, "waiting to be tried again");
        }
      }
      if (pending == 0) break;
    }
    absl::Time now = absl::Now();
    // With a stop flag, look at it at least this often.
    absl::Time wake = policy.stop != nullptr ? now + absl::Milliseconds(200)
                                             : absl::InfiniteFuture();
    for (int i = 0; i < count; ++i) {
      if (finished[i] || in_flight[i]) continue;
      if (next_attempt[i] > now) {
        wake = std::min(wake, next_attempt[i]);
        continue;
      }
      contexts[i] = std::make_unique<grpc::ClientContext>();
      contexts[i]->set_deadline(absl::ToChronoTime(now + policy.rpc_timeout));
      if (!policy.authorization.empty()) {
        contexts[i]->AddMetadata("authorization", policy.authorization);
      }
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
      if (finished[i]) {  // settled by another server's decisive error
        --pending;
        continue;
      }
      if (status.ok()) {
        finished[i] = true;
        --pending;
        continue;
      }
      // Backoff before retry k = attempts - 1: min(max, initial * 2^k) * [0.5, 1].
      const double jitter =
          0.5 + 0.5 * static_cast<double>(NextRandom(seed) >> 11) / static_cast<double>(1ull << 53);
      const absl::Duration backoff =
          std::min(policy.max_backoff,
                   policy.initial_backoff * (1 << std::min(attempts[i] - 1, 20))) *
          jitter;
      const bool transient = IsTransient(status.error_code());
      if (transient && stopped()) {
        settle_stopped(i, status.error_message());
        continue;
      }
      if (transient && now + backoff < give_up) {
        next_attempt[i] = now + backoff;
        if (on_retry_cause) on_retry_cause(rpc, status.error_code());
        if (on_retry) {
          on_retry(absl::StrFormat("%s: %s; retrying in %s (attempt %d)", prefix(i),
                                   status.error_message(), absl::FormatDuration(backoff),
                                   attempts[i] + 1));
        }
        continue;
      }
      finished[i] = true;
      --pending;
      if (transient && attempts[i] > 1) {
        outcome.results[i] = FromGrpcStatus(
            status, absl::StrFormat("%s: gave up after %d attempts over %s", prefix(i),
                                    attempts[i], absl::FormatDuration(now - begin)));
      } else {
        outcome.results[i] = FromGrpcStatus(status, prefix(i));
      }
      if (!transient && outcome.decisive.ok() && !policy.independent) {
        decide(outcome.results[i], status.error_code() != grpc::StatusCode::ABORTED);
      }
    }
  }
  return outcome;
}

// Channel arguments with message limit `message_limit` and the options' reconnect backoff.
grpc::ChannelArguments ChannelArgumentsWithLimit(int message_limit,
                                                 const GrpcParameterClientOptions& options) {
  grpc::ChannelArguments args;
  for (const auto& [name, value] : LargeMessageChannelArguments(message_limit)) {
    args.SetInt(name, value);
  }
  // Notice a restarted server within about max_backoff (gRPC's default waits up to 120 s).
  const int initial_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(options.initial_backoff));
  const int max_ms = std::max<int64_t>(initial_ms, absl::ToInt64Milliseconds(options.max_backoff));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, initial_ms);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, std::min(max_ms, 1000));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_ms);
  return args;
}

// Values of each server's parameter payload, in plan order.
template <typename Shard>
std::vector<int64_t> ParameterCounts(const std::vector<Shard>& shards) {
  std::vector<int64_t> counts;
  for (const Shard& shard : shards) counts.push_back(shard.routing.parameters.count);
  return counts;
}

// Values decoded at a time from a received 16-bit payload (kept in cache on the way).
constexpr int64_t kDecodeChunk = 8192;

}  // namespace

std::string DescribeWireFormats(const GrpcParameterClientOptions& options) {
  return absl::StrCat("gradients ", WireDtypeName(options.push_dtype),
                      options.push_dtype == WireDtype::kFloat32 ? "" : " (error feedback)",
                      ", training weights ", WireDtypeName(options.pull_dtype));
}

bool IsTransient(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::CANCELLED || code == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

grpc::ChannelArguments ChannelArgumentsForPlan(const ShardingPlan& plan, int server,
                                               const GrpcParameterClientOptions& options) {
  grpc::ChannelArguments args =
      ChannelArgumentsWithLimit(MessageLimitForPayload(plan.shard_bytes(server)), options);
  SetExpectedServerName(options.security, absl::StrCat("ps-", server), args);
  return args;
}

GrpcParameterClient::GrpcParameterClient(const ShardingPlan& plan, std::vector<Shard> shards,
                                         const GrpcParameterClientOptions& options,
                                         std::string authorization)
    : plan_(plan),
      shards_(std::move(shards)),
      options_(options),
      push_buffers_(SliceBufferPool::Create(static_cast<size_t>(plan.num_shards()))),
      residuals_(ParameterCounts(shards_)),
      authorization_(std::move(authorization)) {
  absl::MutexLock lock(&mu_);
  seed_state_ = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())) ^
                reinterpret_cast<uintptr_t>(this);
}

absl::StatusOr<std::unique_ptr<GrpcParameterClient>> GrpcParameterClient::Create(
    const ShardingPlan& plan, std::vector<std::string> addresses,
    const GrpcParameterClientOptions& options) {
  if (static_cast<int>(addresses.size()) != plan.num_shards()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d parameter server addresses for a plan of %d parameter servers",
                        addresses.size(), plan.num_shards()));
  }
  RETURN_IF_ERROR(CheckTransportSecurity(options.security));
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (size_t i = 0; i < addresses.size(); ++i) {
    if (addresses[i].empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("parameter server %d has an empty address", i));
    }
    channels.push_back(grpc::CreateCustomChannel(addresses[i],
                                                 ChannelCredentialsFor(options.security),
                                                 ChannelArgumentsForPlan(plan, i, options)));
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
  std::string authorization;
  if (options.security.tokens()) {
    ASSIGN_OR_RETURN(authorization, ClientAuthorization(options.security.auth_token_file));
  }
  RetainPayloadMemory(
      (plan.parameter_layout().total_size() + plan.state_layout().total_size()) * sizeof(float));
  std::vector<Shard> shards;
  for (int i = 0; i < plan.num_shards(); ++i) {
    Shard shard;
    shard.name = std::move(names[i]);
    shard.stub = ps::v1::ParameterServer::NewStub(channels[i]);
    shard.generic_stub = std::make_unique<grpc::GenericStub>(channels[i]);
    shard.channel = std::move(channels[i]);
    shards.push_back(std::move(shard));
  }
  std::vector<ServerRouting> routing = RouteServers(plan);
  for (int i = 0; i < plan.num_shards(); ++i) {
    shards[i].routing = std::move(routing[i]);
  }
  return std::unique_ptr<GrpcParameterClient>(
      new GrpcParameterClient(plan, std::move(shards), options, std::move(authorization)));
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
                                                       absl::Span<float> state, WeightsKind weights,
                                                       PullPurpose purpose, int64_t min_sync_step) {
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
  // Reads see the servers' weights exactly; training pulls may come rounded.
  const WireDtype asked =
      purpose == PullPurpose::kTraining ? options_.pull_dtype : WireDtype::kFloat32;
  std::vector<WireDtype> answered(count, WireDtype::kFloat32);
  const bool sync = options_.sync_replicas;
  int64_t sync_step = -1;  // server 0's PullResponse.sync_step (synchronous)
  std::optional<ps::v1::SyncDecision> decision;
  const auto serialize = [&](int i) -> absl::Status {
    want_state[i] = !state.empty() && shards_[i].routing.state.count > 0;
    ps::v1::PullRequest request =
        MakePullRequest(plan_, i, options_.worker_id, want_state[i], weights, purpose);
    request.set_parameters_dtype(ToPayloadDtype(asked));
    if (sync) AddSyncFields(i, options_.worker_id, min_sync_step, decision, request);
    bool own_buffer;
    const grpc::Status serialized = grpc::SerializationTraits<ps::v1::PullRequest>::Serialize(
        request, &requests[i], &own_buffer);
    return serialized.ok() ? absl::OkStatus()
                           : FromGrpcStatus(serialized, "pull: serializing the request");
  };
  // Synchronous: server 0 first (its step and decision), then the others.
  for (int i = 0; i < (sync ? 1 : count); ++i) RETURN_IF_ERROR(serialize(i));
  // Decodes a shard's PullResponse, copying its payloads from the received slices straight
  // into place (on gRPC's thread, so shards decode in parallel).
  const auto decode = [&](int i) -> absl::Status {
    const Shard& shard = shards_[i];
    WireReader reader(responses[i]);
    bool has_parameters = false, has_state = false;
    uint64_t served_dtype = 0;  // PullResponse.parameters_dtype; absent: float32
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
      if (number == ps::v1::PullResponse::kParametersDtypeFieldNumber && wire_type == kWireVarint) {
        ASSIGN_OR_RETURN(served_dtype, reader.ReadVarint());
        continue;
      }
      if (i == 0 && number == ps::v1::PullResponse::kSyncStepFieldNumber &&
          wire_type == kWireVarint) {
        ASSIGN_OR_RETURN(const uint64_t step, reader.ReadVarint());
        sync_step = static_cast<int64_t>(step);
        continue;
      }
      if (i == 0 && number == ps::v1::PullResponse::kSyncDecisionFieldNumber &&
          wire_type == kWireLengthDelimited) {
        ASSIGN_OR_RETURN(const uint64_t length, reader.ReadVarint());
        if (length > (uint64_t{1} << 20)) return absl::InternalError("answered a huge decision");
        std::string bytes(length, '\0');
        RETURN_IF_ERROR(reader.ReadBytes(length, bytes.data()));
        decision.emplace();
        if (!decision->ParseFromString(bytes)) {
          return absl::InternalError("answered a malformed sync_decision");
        }
        continue;
      }
      const bool is_parameters = number == ps::v1::PullResponse::kParametersFieldNumber;
      const bool is_state = number == ps::v1::PullResponse::kStateFieldNumber;
      if ((!is_parameters && !is_state) || wire_type != kWireLengthDelimited ||
          (is_state && !want_state[i])) {
        RETURN_IF_ERROR(reader.SkipValue(wire_type));
        continue;
      }
      const Routing& routing = is_parameters ? shard.routing.parameters : shard.routing.state;
      float* const target = is_parameters ? parameters.data() : state.data();
      ASSIGN_OR_RETURN(const uint64_t length, reader.ReadVarint());
      const uint64_t values = static_cast<uint64_t>(routing.count);
      // The parameters in the format asked for, or float32 from a server that predates
      // PayloadDtype (it ignores the field); the state always float32.
      const WireDtype dtype =
          is_parameters && length == values * BytesPerValue(asked) ? asked : WireDtype::kFloat32;
      if (length != values * BytesPerValue(dtype)) {
        return absl::InternalError(
            absl::StrFormat("answered %d %s bytes, expected %d (%d %s values)", length,
                            is_parameters ? "parameter" : "state", values * BytesPerValue(dtype),
                            values, WireDtypeName(dtype)));
      }
      if (is_parameters) answered[i] = dtype;
      if (dtype == WireDtype::kFloat32) {
        for (const Segment& segment : routing.segments) {
          RETURN_IF_ERROR(reader.ReadBytes(segment.size * sizeof(float),
                                           reinterpret_cast<char*>(target + segment.flat_offset)));
        }
      } else {
        char encoded[kDecodeChunk * 2];
        for (const Segment& segment : routing.segments) {
          for (int64_t done = 0; done < segment.size; done += kDecodeChunk) {
            const int64_t n = std::min(kDecodeChunk, segment.size - done);
            RETURN_IF_ERROR(reader.ReadBytes(n * BytesPerValue(dtype), encoded));
            DecodeFloats(dtype, encoded, absl::MakeSpan(target + segment.flat_offset + done, n));
          }
        }
      }
      has_parameters |= is_parameters;
      has_state |= is_state;
    }
    if (sync && i == 0 && sync_step < min_sync_step) {
      // Not at the awaited step yet: a response with only the step, by design.
      return absl::OkStatus();
    }
    if (!has_parameters || (want_state[i] && !has_state)) {
      return absl::InternalError(absl::StrCat("answered without ",
                                              has_parameters ? "state" : "parameters"));
    }
    if (served_dtype != static_cast<uint64_t>(answered[i])) {
      return absl::InternalError(
          absl::StrFormat("answered parameters_dtype %d for a payload of %s values", served_dtype,
                          WireDtypeName(answered[i])));
    }
    return absl::OkStatus();
  };
  const RetryPolicy policy = PolicyOf(options_, authorization_);
  const auto call = [&](const std::vector<bool>& only) {
    return CallAll(
        Names(), "Pull", policy, NextSeed(), options_.on_retry, options_.on_retry_cause,
        [&](int i, grpc::ClientContext* context, std::function<void(grpc::Status)> done) {
          shards_[i].generic_stub->UnaryCall(context, kPullMethod, grpc::StubOptions(),
                                             &requests[i], &responses[i],
                                             [&, i, done = std::move(done)](grpc::Status status) {
                                               done(status.ok() ? ToGrpcStatus(decode(i)) : status);
                                             });
        },
        only);
  };
  ModelVersion version;
  if (sync) {
    std::vector<bool> only(count, false);
    only[0] = true;
    RETURN_IF_ERROR(call(only).FirstError());
    if (sync_step < 0) {
      return absl::FailedPreconditionError(
          "parameter server 0 does not train synchronously; give every process the same "
          "--sync_replicas");
    }
    version.sync_step = sync_step;
    if (sync_step < min_sync_step) {
      version.sync_reached = false;
      return version;
    }
    if (count > 1) {
      only.assign(count, true);
      only[0] = false;
      for (int i = 1; i < count; ++i) RETURN_IF_ERROR(serialize(i));
      RETURN_IF_ERROR(call(only).FirstError());
    }
  } else {
    RETURN_IF_ERROR(call({}).FirstError());
  }
  version.shard_versions = std::move(versions);
  version.shard_incarnations = std::move(incarnations);
  return version;
}

absl::StatusOr<PushResult> GrpcParameterClient::Push(const PushRequest& request) {
  const ParameterLayout& parameter_layout = plan_.parameter_layout();
  const ParameterLayout& state_layout = plan_.state_layout();
  const int count = plan_.num_shards();
  // Checked here as a whole so that no server applies its part of a malformed push.
  RETURN_IF_ERROR(CheckPushRequest(request, parameter_layout, state_layout, count));
  double images_per_sec;
  int64_t steps;
  {
    absl::MutexLock lock(&mu_);
    images_per_sec = images_per_sec_;
    steps = steps_;
  }
  // Each request is its small fields, then the payload fields whose bytes are slices of
  // the caller's buffers (not copied; Push returns only once gRPC has released them), or
  // for 16-bit gradients of a pooled buffer they are encoded into, once: every retry
  // resends the same bytes, and the residuals are settled by the final answers.
  const WireDtype dtype = options_.push_dtype;
  BorrowedMemory borrowed;
  std::vector<grpc::ByteBuffer> requests(count), responses(count);
  std::vector<ErrorFeedbackResiduals::Pending> pending;
  for (int i = 0; i < count; ++i) {
    const Shard& shard = shards_[i];
    ps::v1::PushRequest fields = MakePushFields(plan_, i, request, images_per_sec, steps);
    fields.set_gradients_dtype(ToPayloadDtype(dtype));
    std::string header = fields.SerializeAsString();
    const size_t gradient_bytes = shard.routing.parameters.count * BytesPerValue(dtype);
    AppendLengthDelimitedHeader(ps::v1::PushRequest::kGradientsFieldNumber, gradient_bytes, header);
    std::vector<grpc::Slice> slices;
    slices.emplace_back(header);
    if (dtype == WireDtype::kFloat32) {
      for (const Segment& segment : shard.routing.parameters.segments) {
        slices.push_back(borrowed.Borrow(request.gradients.data() + segment.flat_offset,
                                         segment.size * sizeof(float)));
      }
    } else {
      std::unique_ptr<std::vector<char>> encoded = push_buffers_->Take(gradient_bytes);
      pending.push_back(residuals_.Encode(i, request.request_id, dtype, request.gradients,
                                          shard.routing.parameters.segments, encoded->data()));
      slices.push_back(push_buffers_->ToSlice(std::move(encoded), gradient_bytes));
    }
    if (!request.batch_stats.empty() && shard.routing.state.count > 0) {
      std::string stats_header;
      AppendLengthDelimitedHeader(ps::v1::PushRequest::kBatchStatsFieldNumber,
                                  shard.routing.state.count * sizeof(float), stats_header);
      slices.emplace_back(stats_header);
      for (const Segment& segment : shard.routing.state.segments) {
        slices.push_back(borrowed.Borrow(request.batch_stats.data() + segment.flat_offset,
                                         segment.size * sizeof(float)));
      }
    }
    requests[i] = grpc::ByteBuffer(slices.data(), slices.size());
  }
  const RetryPolicy policy = PolicyOf(options_, authorization_);
  // A retry resends the same request (same request_id): applied at most once.
  const auto call = [&](const std::vector<bool>& only) {
    return CallAll(
        Names(), "Push", policy, NextSeed(), options_.on_retry, options_.on_retry_cause,
        [&](int i, grpc::ClientContext* context, std::function<void(grpc::Status)> done) {
          shards_[i].generic_stub->UnaryCall(context, kPushMethod, grpc::StubOptions(),
                                             &requests[i], &responses[i], std::move(done));
        },
        only);
  };
  CallOutcome outcome;
  if (request.computed_from.sync_step >= 0 && count > 1) {
    // Synchronous: the other servers first; server 0, which counts the gradients, only
    // once they all hold them.
    std::vector<bool> only(count, true);
    only[0] = false;
    outcome = call(only);
    if (outcome.FirstError().ok()) {
      only.assign(count, false);
      only[0] = true;
      outcome.results[0] = call(only).results[0];
    } else {
      outcome.results[0] =
          absl::AbortedError("parameter server 0 Push: not sent, as another server refused it");
    }
  } else {
    outcome = call({});
  }
  requests.clear();
  borrowed.WaitUntilReleased();
  std::vector<ps::v1::PushResponse> decoded(count);
  std::vector<absl::Status>& results = outcome.results;
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
  for (ErrorFeedbackResiduals::Pending& push : pending) {
    const int i = push.server;
    const PushOutcome outcome = !results[i].ok()         ? PushOutcome::kNotApplied
                                : decoded[i].duplicate() ? PushOutcome::kDuplicate
                                                         : PushOutcome::kApplied;
    residuals_.Settle(std::move(push), outcome);
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
    result.sync_pending |= decoded[i].sync_pending();
  }
  RETURN_IF_ERROR(outcome.FirstError());
  return result;
}

std::vector<absl::StatusOr<ps::v1::StatusResponse>> GrpcParameterClient::GetStatus() {
  const int count = plan_.num_shards();
  const ps::v1::StatusRequest request;
  std::vector<ps::v1::StatusResponse> responses(count);
  // A server of another plan (another model or number of servers) is an answer that
  // retrying cannot change: it ends the call for every server at once.
  const auto check_plan = [&](int i) -> grpc::Status {
    const ps::v1::StatusResponse& status = responses[i];
    if (status.plan_fingerprint() == plan_.fingerprint()) return grpc::Status::OK;
    return ToGrpcStatus(absl::FailedPreconditionError(absl::StrFormat(
        "holds model %s with %d parameter servers (plan %s); this process computes model %s "
        "with %d (plan %s): start every process with the same model flags and --ps_hosts",
        status.model(), status.num_shards(), FormatFingerprint(status.plan_fingerprint()),
        plan_.model(), plan_.num_shards(), FormatFingerprint(plan_.fingerprint()))));
  };
  const RetryPolicy policy = PolicyOf(options_, authorization_);
  const CallOutcome outcome = CallAll(
      Names(), "GetStatus", policy, NextSeed(), options_.on_retry, options_.on_retry_cause,
      [&](int i, grpc::ClientContext* context, std::function<void(grpc::Status)> done) {
        shards_[i].stub->async()->GetStatus(
            context, &request, &responses[i],
            [&, i, done = std::move(done)](grpc::Status status) {
              done(status.ok() ? check_plan(i) : status);
            });
      });
  std::vector<absl::StatusOr<ps::v1::StatusResponse>> statuses;
  for (int i = 0; i < count; ++i) {
    if (outcome.results[i].ok()) {
      statuses.push_back(std::move(responses[i]));
    } else {
      statuses.push_back(outcome.results[i]);
    }
  }
  return statuses;
}

absl::Status GrpcParameterClient::ReportEvaluation(int32_t worker_id,
                                                   const EvaluationResult& result) {
  const ps::v1::EvaluationReport report = MakeEvaluationReport(plan_, worker_id, result);
  std::vector<ps::v1::EvaluationAck> acks(plan_.num_shards());
  const RetryPolicy policy = PolicyOf(options_, authorization_);
  return CallAll(Names(), "ReportEvaluation", policy, NextSeed(), options_.on_retry,
                 options_.on_retry_cause,
                 [&](int i, grpc::ClientContext* context, std::function<void(grpc::Status)> done) {
                   shards_[i].stub->async()->ReportEvaluation(context, &report, &acks[i],
                                                              std::move(done));
                 })
      .FirstError();
}

absl::Status GrpcParameterClient::Finish(int32_t worker_id, bool training_complete) {
  const ps::v1::FinishRequest request = MakeFinishRequest(plan_, worker_id, training_complete);
  std::vector<ps::v1::FinishResponse> responses(plan_.num_shards());
  const RetryPolicy policy = PolicyOf(options_, authorization_);
  return CallAll(Names(), "Finish", policy, NextSeed(), options_.on_retry, options_.on_retry_cause,
                 [&](int i, grpc::ClientContext* context, std::function<void(grpc::Status)> done) {
                   shards_[i].stub->async()->Finish(context, &request, &responses[i],
                                                    std::move(done));
                 })
      .FirstError();
}

absl::StatusOr<ps::v1::LeaseResponse> GrpcParameterClient::LeaseData(
    int32_t worker_id, const ps::v1::DataPlan& data,
    const std::vector<ps::v1::DataBlock>& completed, const std::vector<ps::v1::DataBlock>& held) {
  // A retry after a lost answer is safe: the server leases a block this worker does not
  // report as held to it again.
  const ps::v1::LeaseRequest request = MakeLeaseRequest(plan_, worker_id, data, completed, held);
  std::vector<ps::v1::LeaseResponse> responses(plan_.num_shards());
  std::vector<bool> only(plan_.num_shards(), false);
  only[0] = true;
  const RetryPolicy policy = PolicyOf(options_, authorization_);
  RETURN_IF_ERROR(
      CallAll(
          Names(), "LeaseData", policy, NextSeed(), options_.on_retry, options_.on_retry_cause,
          [&](int i, grpc::ClientContext* context, std::function<void(grpc::Status)> done) {
            shards_[i].stub->async()->LeaseData(context, &request, &responses[i], std::move(done));
          },
          only)
          .FirstError());
  return responses[0];
}

std::vector<absl::StatusOr<ps::v1::StatusResponse>> QueryParameterServerStatus(
    const std::vector<std::string>& addresses, absl::Duration timeout,
    const TransportSecurity& security) {
  GrpcParameterClientOptions options;
  options.security = security;
  std::string authorization;
  absl::Status usable = CheckTransportSecurity(security);
  if (usable.ok() && security.tokens()) {
    absl::StatusOr<std::string> loaded = ClientAuthorization(security.auth_token_file);
    usable = loaded.status();
    if (loaded.ok()) authorization = *loaded;
  }
  if (!usable.ok()) {
    return std::vector<absl::StatusOr<ps::v1::StatusResponse>>(addresses.size(), usable);
  }
  std::vector<std::unique_ptr<ps::v1::ParameterServer::Stub>> stubs;
  for (size_t i = 0; i < addresses.size(); ++i) {
    grpc::ChannelArguments args = ChannelArgumentsWithLimit(kSmallMessageLimit, options);
    SetExpectedServerName(security, absl::StrCat("ps-", i), args);
    stubs.push_back(ps::v1::ParameterServer::NewStub(
        grpc::CreateCustomChannel(addresses[i], ChannelCredentialsFor(security), args)));
  }
  const ps::v1::StatusRequest request;
  std::vector<ps::v1::StatusResponse> responses(addresses.size());
  // One attempt (no patience) to each server, on its own.
  const RetryPolicy policy{timeout, absl::ZeroDuration(), options.initial_backoff,
                           options.max_backoff, nullptr, authorization, /*independent=*/true};
  const std::vector<absl::Status> results =
      CallAll(addresses, "GetStatus", policy, /*seed=*/1, /*on_retry=*/nullptr,
              /*on_retry_cause=*/nullptr,
              [&](int i, grpc::ClientContext* context, std::function<void(grpc::Status)> done) {
                stubs[i]->async()->GetStatus(context, &request, &responses[i], std::move(done));
              })
          .results;
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
