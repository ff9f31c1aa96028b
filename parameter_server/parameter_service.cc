#include "parameter_server/parameter_service.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <utility>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/check.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "parameter_server/sharding_plan.h"
#include "parameter_server/wire_payload.h"

namespace mobilenet {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "payloads are little-endian float32 copied as memory");

// " (model \"...\", N parameter servers)", or "" when the caller sent neither.
std::string DescribePlanSide(absl::string_view model, int32_t num_shards) {
  if (model.empty() && num_shards <= 0) return "";
  return absl::StrFormat(" (model \"%s\", %d parameter servers)", model, num_shards);
}

// The floats of a payload whose size was checked to be 4 * count: a view of the bytes when
// they are float-aligned, else a copy in `scratch`.
absl::Span<const float> FloatView(const std::string& bytes, std::vector<float>& scratch) {
  const size_t count = bytes.size() / sizeof(float);
  if (reinterpret_cast<uintptr_t>(bytes.data()) % alignof(float) == 0) {
    return absl::MakeConstSpan(reinterpret_cast<const float*>(bytes.data()), count);
  }
  scratch.resize(count);
  std::memcpy(scratch.data(), bytes.data(), bytes.size());
  return scratch;
}

// InvalidArgument unless `bytes` holds exactly `count` floats (or nothing, when
// `may_be_empty`).
absl::Status CheckPayloadSize(const std::string& bytes, int64_t count, bool may_be_empty,
                              absl::string_view what) {
  if (may_be_empty && bytes.empty()) return absl::OkStatus();
  if (bytes.size() % sizeof(float) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("push: %s payload has %d bytes, not a multiple of 4 (float32 expected)",
                        what, bytes.size()));
  }
  if (static_cast<int64_t>(bytes.size()) != count * static_cast<int64_t>(sizeof(float))) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "push: %s payload has %d bytes (%d floats), expected %d bytes (%d floats)%s", what,
        bytes.size(), bytes.size() / sizeof(float), count * sizeof(float), count,
        may_be_empty ? " or none" : ""));
  }
  return absl::OkStatus();
}

// A random nonzero 64-bit value.
uint64_t RandomIncarnation() {
  std::random_device device;
  uint64_t value = 0;
  while (value == 0) value = (static_cast<uint64_t>(device()) << 32) ^ device();
  return value;
}

double UnixSecondsOf(absl::Time time) { return absl::ToDoubleSeconds(time - absl::UnixEpoch()); }

// A thread-safe pool of request/response pairs for one method: gRPC takes a pair per
// call and gives it back when the call is done; up to `max_idle` pairs are kept.
template <typename Request, typename Response>
class MessagePool final : public grpc::MessageAllocator<Request, Response> {
 public:
  explicit MessagePool(size_t max_idle) : max_idle_(max_idle) {}

  grpc::MessageHolder<Request, Response>* AllocateMessages() override {
    absl::MutexLock lock(&mu_);
    if (idle_.empty()) return new Holder(this);
    Holder* holder = idle_.back().release();
    idle_.pop_back();
    return holder;
  }

 private:
  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    explicit Holder(MessagePool* pool) : pool_(pool) {
      this->set_request(&request_);
      this->set_response(&response_);
    }
    // The next call's handler overwrites every response field it sends; the request is
    // cleared by parsing (keeping its buffers' capacity).
    void Release() override { pool_->Return(this); }

   private:
    MessagePool* const pool_;
    Request request_;
    Response response_;
  };

  void Return(Holder* holder) {
    absl::MutexLock lock(&mu_);
    if (idle_.size() < max_idle_) {
      idle_.emplace_back(holder);
    } else {
      delete holder;
    }
  }

  const size_t max_idle_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Holder>> idle_ ABSL_GUARDED_BY(mu_);
};

// Pairs kept per method: enough for several workers' concurrent calls.
constexpr size_t kIdleMessagesPerMethod = 8;

}  // namespace

class ParameterService::ReusedMessages {
 public:
  std::shared_ptr<SliceBufferPool> pull_buffers = SliceBufferPool::Create(kIdleMessagesPerMethod);
  MessagePool<ps::v1::PushRequest, ps::v1::PushResponse> push{kIdleMessagesPerMethod};
};

ParameterService::ParameterService(ParameterShard* shard, ParameterServiceOptions options)
    : shard_(shard),
      options_(std::move(options)),
      reused_messages_(std::make_unique<ReusedMessages>()),
      start_time_(absl::Now()),
      incarnation_(options_.incarnation != 0 ? options_.incarnation : RandomIncarnation()) {
  MOBILENET_CHECK(shard_ != nullptr);
  MOBILENET_CHECK(options_.shard_index >= 0 && options_.shard_index < options_.num_shards);
  SetMessageAllocatorFor_Push(&reused_messages_->push);
  RetainPayloadMemory((shard_->parameter_count() + shard_->state_count()) * sizeof(float));
}

ParameterService::~ParameterService() = default;

absl::Status ParameterService::CheckPlan(uint64_t fingerprint, absl::string_view model,
                                         int32_t num_shards, int32_t shard_index,
                                         absl::string_view rpc) const {
  if (fingerprint != options_.plan_fingerprint) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: sharding plan mismatch: the caller's plan has fingerprint %s%s, parameter server "
        "%d's has %s%s; start every process with the same model flags and --ps_hosts",
        rpc, FormatFingerprint(fingerprint), DescribePlanSide(model, num_shards),
        options_.shard_index, FormatFingerprint(options_.plan_fingerprint),
        DescribePlanSide(options_.model, options_.num_shards)));
  }
  if (shard_index >= 0 && shard_index != options_.shard_index) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: request for parameter server %d reached parameter server %d; the order of "
        "--ps_hosts differs between processes",
        rpc, shard_index, options_.shard_index));
  }
  return absl::OkStatus();
}

ParameterService::WorkerRecord& ParameterService::TouchWorker(int32_t worker_id) {
  WorkerRecord& record = workers_[worker_id];
  record.last_seen = absl::Now();
  return record;
}

bool ParameterService::AllWorkersFinished() const {
  int finished = 0;
  for (const auto& [id, record] : workers_) finished += record.finished ? 1 : 0;
  if (options_.num_workers > 0) return finished >= options_.num_workers;
  return !workers_.empty() && finished == static_cast<int>(workers_.size());
}

absl::Status ParameterService::DoPull(const grpc::ByteBuffer& request_bytes,
                                      grpc::ByteBuffer& response) {
  ps::v1::PullRequest request;
  {
    grpc::ByteBuffer copy(request_bytes);  // shares the slices; parsing consumes the copy
    if (!grpc::SerializationTraits<ps::v1::PullRequest>::Deserialize(&copy, &request).ok()) {
      return absl::InvalidArgumentError("Pull: the request is not a PullRequest");
    }
  }
  {
    absl::MutexLock lock(&mu_);
    bytes_in_ += static_cast<int64_t>(request_bytes.Length());
    if (request.worker_id() >= 0) TouchWorker(request.worker_id()).finished = false;
  }
  RETURN_IF_ERROR(CheckPlan(request.plan_fingerprint(), request.model(), request.num_shards(),
                            request.shard_index(), "Pull"));
  // The encoded PullResponse is two slices of one buffer, [parameters header][parameters]
  // and [state header][state][version], each payload 64-byte aligned; the shard copies the
  // payloads straight into them and gRPC sends them without another copy.
  const size_t parameter_bytes = shard_->parameter_count() * sizeof(float);
  const bool with_state = request.include_state() && shard_->state_count() > 0;
  const size_t state_bytes = with_state ? shard_->state_count() * sizeof(float) : 0;
  std::string parameters_header, state_header, version_field;
  AppendLengthDelimitedHeader(ps::v1::PullResponse::kParametersFieldNumber, parameter_bytes,
                              parameters_header);
  if (with_state) {
    AppendLengthDelimitedHeader(ps::v1::PullResponse::kStateFieldNumber, state_bytes,
                                state_header);
  }
  constexpr size_t kAlignment = 64;
  constexpr size_t kMaxVersionFieldBytes = 11 + 9;  // and the incarnation
  const size_t capacity = parameters_header.size() + parameter_bytes + state_header.size() +
                          state_bytes + kMaxVersionFieldBytes + 2 * kAlignment;
  std::unique_ptr<std::vector<char>> buffer = reused_messages_->pull_buffers->Take(capacity);
  char* const base = buffer->data();
  // The offset of the first kAlignment-aligned address at or after base + at_least.
  const auto aligned_offset = [base](size_t at_least) {
    const uintptr_t address = reinterpret_cast<uintptr_t>(base) + at_least;
    return static_cast<size_t>((address + kAlignment - 1) / kAlignment * kAlignment -
                               reinterpret_cast<uintptr_t>(base));
  };
  const size_t parameters_offset = aligned_offset(parameters_header.size());
  const size_t state_offset =
      aligned_offset(parameters_offset + parameter_bytes + state_header.size());
  std::memcpy(base + parameters_offset - parameters_header.size(), parameters_header.data(),
              parameters_header.size());
  std::memcpy(base + state_offset - state_header.size(), state_header.data(),
              state_header.size());
  ASSIGN_OR_RETURN(
      const int64_t version,
      shard_->Pull(absl::MakeSpan(reinterpret_cast<float*>(base + parameters_offset),
                                  shard_->parameter_count()),
                   with_state ? absl::MakeSpan(reinterpret_cast<float*>(base + state_offset),
                                               shard_->state_count())
                              : absl::Span<float>()));
  if (version != 0) {
    AppendVarintField(ps::v1::PullResponse::kVersionFieldNumber, static_cast<uint64_t>(version),
                      version_field);
  }
  AppendFixed64Field(ps::v1::PullResponse::kServerIncarnationFieldNumber, incarnation_,
                     version_field);
  std::memcpy(base + state_offset + state_bytes, version_field.data(), version_field.size());
  const size_t end = state_offset + state_bytes + version_field.size();
  const grpc::Slice whole = reused_messages_->pull_buffers->ToSlice(std::move(buffer), end);
  const grpc::Slice parts[] = {
      whole.sub(parameters_offset - parameters_header.size(), parameters_offset + parameter_bytes),
      whole.sub(state_offset - state_header.size(), end)};
  response = grpc::ByteBuffer(parts, 2);
  const size_t size = parts[0].size() + parts[1].size();
  absl::MutexLock lock(&mu_);
  bytes_out_ += static_cast<int64_t>(size);
  return absl::OkStatus();
}

absl::Status ParameterService::DoPush(const ps::v1::PushRequest& request,
                                      ps::v1::PushResponse& response) {
  response.Clear();  // a reused message
  {
    absl::MutexLock lock(&mu_);
    bytes_in_ += static_cast<int64_t>(request.ByteSizeLong());
    if (request.worker_id() >= 0) TouchWorker(request.worker_id()).finished = false;
  }
  absl::Status valid = CheckPlan(request.plan_fingerprint(), request.model(),
                                 request.num_shards(), request.shard_index(), "Push");
  if (valid.ok()) {
    valid = CheckPayloadSize(request.gradients(), shard_->parameter_count(),
                             /*may_be_empty=*/false, "gradient");
  }
  if (valid.ok()) {
    valid = CheckPayloadSize(request.batch_stats(), shard_->state_count(),
                             /*may_be_empty=*/true, "batch statistics");
  }
  if (!valid.ok()) {
    absl::MutexLock lock(&mu_);
    ++pushes_refused_;
    return valid;
  }
  if (request.server_incarnation() != 0 && request.server_incarnation() != incarnation_) {
    absl::MutexLock lock(&mu_);
    ++pushes_restarted_;
    return absl::AbortedError(absl::StrFormat(
        "Push: worker %d's gradients were computed from weights parameter server %d served "
        "before it restarted (it is now at version %d); pull again",
        request.worker_id(), options_.shard_index, shard_->status().version));
  }
  std::vector<float> gradient_scratch, stats_scratch;
  ShardPushRequest push;
  push.worker_id = request.worker_id();
  push.request_id = request.request_id();
  push.computed_from_version = request.computed_from_version();
  push.example_count = request.example_count();
  push.gradients = FloatView(request.gradients(), gradient_scratch);
  push.batch_stats = FloatView(request.batch_stats(), stats_scratch);
  ASSIGN_OR_RETURN(const ShardPushResult result, shard_->ApplyGradients(push));
  response.set_version(result.version);
  response.set_staleness(result.staleness);
  response.set_learning_rate(result.learning_rate);
  response.set_duplicate(result.duplicate);
  absl::MutexLock lock(&mu_);
  bytes_out_ += static_cast<int64_t>(response.ByteSizeLong());
  if (request.worker_id() >= 0) {
    WorkerRecord& record = TouchWorker(request.worker_id());
    ++record.pushes;
    record.last_push = record.last_seen;
    record.steps = request.worker_steps();
    record.images_per_sec = request.worker_images_per_sec();
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* ParameterService::Pull(grpc::CallbackServerContext* context,
                                                 const grpc::ByteBuffer* request,
                                                 grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(DoPull(*request, *response)));
  return reactor;
}

grpc::ServerUnaryReactor* ParameterService::Push(grpc::CallbackServerContext* context,
                                                 const ps::v1::PushRequest* request,
                                                 ps::v1::PushResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(DoPush(*request, *response)));
  return reactor;
}

grpc::ServerUnaryReactor* ParameterService::GetStatus(grpc::CallbackServerContext* context,
                                                      const ps::v1::StatusRequest* request,
                                                      ps::v1::StatusResponse* response) {
  *response = Status();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ParameterService::ReportEvaluation(
    grpc::CallbackServerContext* context, const ps::v1::EvaluationReport* request,
    ps::v1::EvaluationAck* response) {
  absl::Status status = CheckPlan(request->plan_fingerprint(), request->model(),
                                  request->num_shards(), -1, "ReportEvaluation");
  if (status.ok() && (request->examples() < 0 || request->correct() < 0 ||
                      request->correct() > request->examples())) {
    status = absl::InvalidArgumentError(absl::StrFormat(
        "ReportEvaluation: %d correct of %d examples; expected 0 <= correct <= examples",
        request->correct(), request->examples()));
  }
  if (status.ok()) {
    absl::MutexLock lock(&mu_);
    if (request->worker_id() >= 0) TouchWorker(request->worker_id());
    has_evaluation_ = true;
    evaluation_ = *request;
    evaluation_time_ = absl::Now();
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* ParameterService::Finish(grpc::CallbackServerContext* context,
                                                   const ps::v1::FinishRequest* request,
                                                   ps::v1::FinishResponse* response) {
  const absl::Status status = CheckPlan(request->plan_fingerprint(), request->model(),
                                        request->num_shards(), -1, "Finish");
  if (status.ok()) {
    absl::MutexLock lock(&mu_);
    if (request->worker_id() >= 0) TouchWorker(request->worker_id()).finished = true;
    if (request->training_complete() || AllWorkersFinished()) finishing_ = true;
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

ps::v1::StatusResponse ParameterService::Status() const {
  const ShardStatus shard = shard_->status();
  ps::v1::StatusResponse response;
  response.set_shard_index(options_.shard_index);
  response.set_num_shards(options_.num_shards);
  response.set_plan_fingerprint(options_.plan_fingerprint);
  for (const std::vector<TensorSlice>* slices : {&shard_->spec().parameters,
                                                 &shard_->spec().state}) {
    for (const TensorSlice& slice : *slices) {
      ps::v1::SliceInfo* info = response.add_slices();
      info->set_tensor(slice.tensor);
      info->set_begin(slice.begin);
      info->set_end(slice.end);
    }
  }
  response.set_parameter_bytes(shard.parameter_count * sizeof(float));
  response.set_state_bytes(shard.state_count * sizeof(float));
  response.set_parameter_count(shard.parameter_count);
  response.set_state_count(shard.state_count);
  response.set_global_step(shard.version);
  response.set_examples_seen(shard.examples_seen);
  response.set_epoch(options_.examples_per_epoch > 0
                         ? static_cast<double>(shard.examples_seen) / options_.examples_per_epoch
                         : 0.0);
  response.set_learning_rate(shard.learning_rate);
  response.set_pushes_applied(shard.pushes_applied);
  response.set_pushes_rejected_stale(shard.pushes_rejected_stale);
  response.set_pushes_duplicate(shard.pushes_duplicate);
  response.set_staleness_p50(shard.staleness_p50);
  response.set_staleness_p90(shard.staleness_p90);
  response.set_staleness_max(shard.staleness_max);
  response.set_staleness_mean(shard.staleness_mean);
  response.set_model(options_.model);

  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  response.set_pushes_invalid(shard.pushes_invalid + pushes_refused_);
  response.set_pushes_rejected_restarted(pushes_restarted_);
  response.set_bytes_in(bytes_in_);
  response.set_bytes_out(bytes_out_);
  std::vector<int32_t> ids;
  for (const auto& [id, record] : workers_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (int32_t id : ids) {
    const WorkerRecord& record = workers_.at(id);
    ps::v1::WorkerStatus* worker = response.add_workers();
    worker->set_worker_id(id);
    worker->set_seconds_since_last_seen(absl::ToDoubleSeconds(now - record.last_seen));
    worker->set_seconds_since_last_push(record.last_push == absl::InfinitePast()
                                            ? -1.0
                                            : absl::ToDoubleSeconds(now - record.last_push));
    worker->set_steps(record.steps);
    worker->set_images_per_sec(record.images_per_sec);
    worker->set_pushes(record.pushes);
    worker->set_finished(record.finished);
  }
  if (checkpoint_time_ != absl::InfinitePast()) {
    response.set_last_checkpoint_unix_seconds(UnixSecondsOf(checkpoint_time_));
    response.set_last_checkpoint_step(checkpoint_step_);
    response.set_last_checkpoint_path(checkpoint_path_);
  }
  response.set_uptime_seconds(absl::ToDoubleSeconds(now - start_time_));
  if (has_evaluation_) {
    response.set_eval_examples(evaluation_.examples());
    response.set_eval_accuracy(evaluation_.examples() > 0
                                   ? static_cast<double>(evaluation_.correct()) /
                                         evaluation_.examples()
                                   : 0.0);
    response.set_eval_loss(evaluation_.loss());
    response.set_eval_step(evaluation_.global_step());
    response.set_eval_unix_seconds(UnixSecondsOf(evaluation_time_));
  }
  response.set_finishing(finishing_);
  return response;
}

void ParameterService::SetLastCheckpoint(absl::Time time, int64_t step, std::string path) {
  absl::MutexLock lock(&mu_);
  checkpoint_time_ = time;
  checkpoint_step_ = step;
  checkpoint_path_ = std::move(path);
}

void ParameterService::WaitForFinish() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&finishing_));
}

bool ParameterService::WaitForFinishWithTimeout(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&finishing_), timeout);
}

void ParameterService::RequestFinish() {
  absl::MutexLock lock(&mu_);
  finishing_ = true;
}

bool ParameterService::finishing() const {
  absl::MutexLock lock(&mu_);
  return finishing_;
}

absl::StatusOr<StartedServer> StartGrpcServer(absl::string_view address,
                                              const std::vector<grpc::Service*>& services) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon + 1 == address.size() ||
      !std::all_of(address.begin() + colon + 1, address.end(),
                   [](char c) { return absl::ascii_isdigit(c); })) {
    return absl::InvalidArgumentError(
        absl::StrCat("listening address \"", address, "\": expected host:port"));
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  StartedServer started;
  builder.AddListeningPort(std::string(address), grpc::InsecureServerCredentials(),
                           &started.port);
  builder.SetMaxReceiveMessageSize(kMaxGrpcMessageBytes);
  builder.SetMaxSendMessageSize(kMaxGrpcMessageBytes);
  for (const auto& [name, value] : LargeMessageChannelArguments()) {
    builder.AddChannelArgument(name, value);
  }
  // A second server on a taken port must fail, not share it (gRPC's Linux default).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  for (grpc::Service* service : services) builder.RegisterService(service);
  started.server = builder.BuildAndStart();
  if (started.server == nullptr || started.port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "could not listen on ", address, " (address in use, or not an address of this host?)"));
  }
  return started;
}

}  // namespace mobilenet
