#include "parameter_server/parameter_service.h"

#include <cstring>
#include <utility>
#include <vector>

#include "common/check.h"
#include "common/float_conversion.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "parameter_server/core/payload_dtype.h"
#include "parameter_server/wire_payload.h"

namespace mobilenet {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "float32 payloads are little-endian and copied as memory");

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
    // cleared by parsing (keeping its buffers' capacity, at most one legal message).
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

ParameterService::ParameterService(ParameterServerCore* core,
                                   const CallerAuthenticator* authenticator)
    : core_(core),
      authenticator_(authenticator),
      reused_messages_(std::make_unique<ReusedMessages>()) {
  MOBILENET_CHECK(core_ != nullptr);
  SetMessageAllocatorFor_Push(&reused_messages_->push);
  RetainPayloadMemory((core_->parameter_count() + core_->state_count()) * sizeof(float));
}

ParameterService::~ParameterService() = default;

absl::StatusOr<Caller> ParameterService::Identify(const grpc::CallbackServerContext& context) {
  if (authenticator_ == nullptr) return Caller::Trusted();
  absl::StatusOr<Caller> caller = authenticator_->Authenticate(context);
  if (!caller.ok()) core_->CountUnauthenticated();
  return caller;
}

absl::Status ParameterService::DoPull(const Caller& caller, const grpc::ByteBuffer& request_bytes,
                                      grpc::ByteBuffer& response) {
  ps::v1::PullRequest request;
  {
    grpc::ByteBuffer copy(request_bytes);  // shares the slices; parsing consumes the copy
    if (!grpc::SerializationTraits<ps::v1::PullRequest>::Deserialize(&copy, &request).ok()) {
      return absl::InvalidArgumentError("Pull: the request is not a PullRequest");
    }
  }
  // The encoded PullResponse is two slices of one buffer, [parameters header][parameters]
  // and [state header][state][version][incarnation][dtype], each payload 64-byte aligned;
  // the core copies the payloads straight into them (float32 parameters; in another format
  // through scratch memory, then encoded into place) and gRPC sends them without another
  // copy. An unknown format is the core's to refuse; until then it sizes as float32.
  const WireDtype dtype = ToWireDtype(request.parameters_dtype());
  const size_t parameter_bytes = core_->parameter_count() * BytesPerValue(dtype);
  const bool with_state = request.include_state() && core_->state_count() > 0;
  const size_t state_bytes = with_state ? core_->state_count() * sizeof(float) : 0;
  std::string parameters_header, state_header, version_field;
  AppendLengthDelimitedHeader(ps::v1::PullResponse::kParametersFieldNumber, parameter_bytes,
                              parameters_header);
  if (with_state) {
    AppendLengthDelimitedHeader(ps::v1::PullResponse::kStateFieldNumber, state_bytes,
                                state_header);
  }
  constexpr size_t kAlignment = 64;
  constexpr size_t kMaxVersionFieldBytes = 11 + 9 + 2;  // and the incarnation, the dtype
  // Server 0 of a synchronous cluster also sends its step and decision (sync_replicas.h).
  const size_t sync_field_bytes =
      core_->identity().sync_replicas
          ? 64 + 16 * (static_cast<size_t>(core_->identity().num_workers) + kMaxDroppedPerDecision)
          : 0;
  const size_t capacity = parameters_header.size() + parameter_bytes + state_header.size() +
                          state_bytes + kMaxVersionFieldBytes + sync_field_bytes + 2 * kAlignment;
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
  std::unique_ptr<std::vector<char>> scratch;
  if (dtype != WireDtype::kFloat32) {
    scratch = reused_messages_->pull_buffers->Take(core_->parameter_count() * sizeof(float));
  }
  const absl::Span<float> parameters = absl::MakeSpan(
      reinterpret_cast<float*>(scratch != nullptr ? scratch->data() : base + parameters_offset),
      core_->parameter_count());
  SyncPullInfo sync;
  absl::StatusOr<int64_t> pulled = core_->Pull(
      caller, request, parameters,
      with_state
          ? absl::MakeSpan(reinterpret_cast<float*>(base + state_offset), core_->state_count())
          : absl::Span<float>(),
      &sync);
  if (scratch != nullptr) {
    if (pulled.ok() && sync.reached) EncodeFloats(dtype, parameters, base + parameters_offset);
    reused_messages_->pull_buffers->GiveBack(std::move(scratch));
  }
  ASSIGN_OR_RETURN(const int64_t version, std::move(pulled));
  if (core_->identity().sync_replicas && core_->identity().shard_index == 0) {
    // Server 0 of a synchronous cluster: the step and decision, and nothing else when the
    // asked-for step is not reached yet.
    ps::v1::PullResponse small;
    small.set_version(version);
    small.set_server_incarnation(core_->incarnation());
    small.set_sync_step(sync.step);
    if (sync.decision.has_value()) *small.mutable_sync_decision() = *sync.decision;
    if (!sync.reached) {
      reused_messages_->pull_buffers->GiveBack(std::move(buffer));
      bool own_buffer;
      const grpc::Status serialized =
          grpc::SerializationTraits<ps::v1::PullResponse>::Serialize(small, &response, &own_buffer);
      return serialized.ok() ? absl::OkStatus() : absl::InternalError("Pull: serializing");
    }
    small.clear_version();
    small.clear_server_incarnation();
    version_field = small.SerializeAsString();  // the step fields; version etc. follow
  }
  if (version != 0) {
    AppendVarintField(ps::v1::PullResponse::kVersionFieldNumber, static_cast<uint64_t>(version),
                      version_field);
  }
  AppendFixed64Field(ps::v1::PullResponse::kServerIncarnationFieldNumber, core_->incarnation(),
                     version_field);
  if (dtype != WireDtype::kFloat32) {
    AppendVarintField(ps::v1::PullResponse::kParametersDtypeFieldNumber,
                      static_cast<uint64_t>(dtype), version_field);
  }
  MOBILENET_CHECK(version_field.size() <= kMaxVersionFieldBytes + sync_field_bytes);
  std::memcpy(base + state_offset + state_bytes, version_field.data(), version_field.size());
  const size_t end = state_offset + state_bytes + version_field.size();
  const grpc::Slice whole = reused_messages_->pull_buffers->ToSlice(std::move(buffer), end);
  const grpc::Slice parts[] = {
      whole.sub(parameters_offset - parameters_header.size(), parameters_offset + parameter_bytes),
      whole.sub(state_offset - state_header.size(), end)};
  response = grpc::ByteBuffer(parts, 2);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* ParameterService::Pull(grpc::CallbackServerContext* context,
                                                 const grpc::ByteBuffer* request,
                                                 grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Caller> caller = Identify(*context);
  reactor->Finish(
      ToGrpcStatus(caller.ok() ? DoPull(*caller, *request, *response) : caller.status()));
  return reactor;
}

grpc::ServerUnaryReactor* ParameterService::Push(grpc::CallbackServerContext* context,
                                                 const ps::v1::PushRequest* request,
                                                 ps::v1::PushResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Caller> caller = Identify(*context);
  reactor->Finish(
      ToGrpcStatus(caller.ok() ? core_->Push(*caller, *request, *response) : caller.status()));
  return reactor;
}

grpc::ServerUnaryReactor* ParameterService::GetStatus(grpc::CallbackServerContext* context,
                                                      const ps::v1::StatusRequest* request,
                                                      ps::v1::StatusResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Caller> caller = Identify(*context);
  if (caller.ok()) *response = core_->GetStatus();  // every identified caller may read it
  reactor->Finish(ToGrpcStatus(caller.status()));
  return reactor;
}

grpc::ServerUnaryReactor* ParameterService::ReportEvaluation(
    grpc::CallbackServerContext* context, const ps::v1::EvaluationReport* request,
    ps::v1::EvaluationAck* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Caller> caller = Identify(*context);
  reactor->Finish(
      ToGrpcStatus(caller.ok() ? core_->ReportEvaluation(*caller, *request) : caller.status()));
  return reactor;
}

grpc::ServerUnaryReactor* ParameterService::Finish(grpc::CallbackServerContext* context,
                                                   const ps::v1::FinishRequest* request,
                                                   ps::v1::FinishResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Caller> caller = Identify(*context);
  reactor->Finish(ToGrpcStatus(caller.ok() ? core_->Finish(*caller, *request) : caller.status()));
  return reactor;
}

grpc::ServerUnaryReactor* ParameterService::LeaseData(grpc::CallbackServerContext* context,
                                                      const ps::v1::LeaseRequest* request,
                                                      ps::v1::LeaseResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::StatusOr<Caller> caller = Identify(*context);
  reactor->Finish(
      ToGrpcStatus(caller.ok() ? core_->LeaseData(*caller, *request, *response) : caller.status()));
  return reactor;
}

}  // namespace mobilenet
