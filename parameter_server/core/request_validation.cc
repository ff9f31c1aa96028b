#include "parameter_server/core/request_validation.h"

#include <cmath>
#include <cstring>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/class_names.h"
#include "common/float_conversion.h"
#include "parameter_server/core/data_leases.h"
#include "parameter_server/core/payload_dtype.h"
#include "parameter_server/core/sharding_plan.h"
#include "parameter_server/core/sync_replicas.h"

namespace mobilenet {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "payloads are little-endian float32 read as memory");

// The most test examples an evaluation may claim (far beyond any test set).
constexpr int64_t kMaxEvaluationExamples = int64_t{1} << 32;

// " (model \"...\", N parameter servers)", or "" when the caller sent neither.
std::string DescribePlanSide(absl::string_view model, int32_t num_shards) {
  if (model.empty() && num_shards <= 0) return "";
  return absl::StrFormat(" (model \"%s\", %d parameter servers)", model, num_shards);
}

// FAILED_PRECONDITION unless the caller's plan is this server's (shard_index < 0: the
// request names no shard).
absl::Status CheckPlan(absl::string_view rpc, uint64_t fingerprint, absl::string_view model,
                       int32_t num_shards, int32_t shard_index, bool names_shard,
                       const ServerIdentity& server) {
  if (fingerprint != server.plan_fingerprint) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: sharding plan mismatch: the caller's plan has fingerprint %s%s, parameter server "
        "%d's has %s%s; start every process with the same model flags and --ps_hosts",
        rpc, FormatFingerprint(fingerprint), DescribePlanSide(model, num_shards),
        server.shard_index, FormatFingerprint(server.plan_fingerprint),
        DescribePlanSide(server.model, server.num_shards)));
  }
  if (names_shard && shard_index != server.shard_index) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: addressed to parameter server %d, but this is parameter server %d of %d; check "
        "the order of --ps_hosts",
        rpc, shard_index, server.shard_index, server.num_shards));
  }
  return absl::OkStatus();
}

// Collects field errors into one INVALID_ARGUMENT.
class FieldErrors {
 public:
  explicit FieldErrors(absl::string_view rpc) : rpc_(rpc) {}

  template <typename... Args>
  void Add(const absl::FormatSpec<Args...>& format, const Args&... args) {
    errors_.push_back(absl::StrFormat(format, args...));
  }
  absl::Status status() const {
    if (errors_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(rpc_, ": ", absl::StrJoin(errors_, "; ")));
  }

 private:
  std::string rpc_;
  std::vector<std::string> errors_;
};

void CheckMember(FieldErrors& errors, int64_t worker_id, const ServerIdentity& server) {
  if (worker_id < 0 || worker_id >= server.num_workers) {
    errors.Add("worker_id: %d is not a worker of this cluster (ids 0 to %d)", worker_id,
               server.num_workers - 1);
  }
}

// A PayloadDtype field holds one of its values.
void CheckPayloadDtype(FieldErrors& errors, absl::string_view field, int dtype) {
  if (!ps::v1::PayloadDtype_IsValid(dtype)) {
    errors.Add("%s: %d is not a PayloadDtype (0 float32, 1 bfloat16, 2 float16)", field, dtype);
  }
}

// "float32", "bfloat16" or "float16", as PayloadDtype names them.
absl::string_view FormatName(WireDtype dtype) {
  switch (dtype) {
    case WireDtype::kBfloat16:
      return "bfloat16";
    case WireDtype::kFloat16:
      return "float16";
    default:
      return "float32";
  }
}

// The byte size of a payload field that must hold `count` values of `dtype` (or nothing,
// when `may_be_empty`).
void CheckPayloadSize(FieldErrors& errors, absl::string_view field, size_t bytes, int64_t count,
                      WireDtype dtype, bool may_be_empty) {
  if (may_be_empty && bytes == 0) return;
  const uint64_t expected = static_cast<uint64_t>(count) * BytesPerValue(dtype);
  if (bytes != expected) {
    errors.Add("%s: %d bytes, expected %d (%d %s values)%s", field, bytes, expected, count,
               FormatName(dtype), may_be_empty ? " or none" : "");
  }
}

// The float32 values of `bytes` (holding a whole number of `dtype` values): a view when
// they are float32 and float-aligned, else decoded into `copy` at `copy_offset`.
absl::Span<const float> FloatsOf(const std::string& bytes, WireDtype dtype,
                                 std::vector<float>& copy, size_t copy_offset) {
  const size_t count = bytes.size() / BytesPerValue(dtype);
  if (count == 0) return {};
  if (dtype == WireDtype::kFloat32 &&
      reinterpret_cast<uintptr_t>(bytes.data()) % alignof(float) == 0) {
    return absl::MakeConstSpan(reinterpret_cast<const float*>(bytes.data()), count);
  }
  const absl::Span<float> decoded = absl::MakeSpan(copy.data() + copy_offset, count);
  DecodeFloats(dtype, bytes.data(), decoded);
  return decoded;
}

absl::Status Denied(absl::string_view rpc, const Caller& caller, absl::string_view what) {
  return absl::PermissionDeniedError(absl::StrCat(rpc, ": ", caller.name(), " may not ", what));
}

// PERMISSION_DENIED unless `caller` may act as worker `worker_id` (its own id only).
absl::Status CheckActsAsItself(absl::string_view rpc, const Caller& caller, int64_t worker_id,
                               absl::string_view what) {
  if (caller.role == CallerRole::kTrusted) return absl::OkStatus();
  if (caller.role != CallerRole::kWorker) return Denied(rpc, caller, what);
  if (worker_id != caller.index) {
    return Denied(rpc, caller, absl::StrCat(what, " as worker ", worker_id));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidatePullRequest(const Caller& caller, const ps::v1::PullRequest& request,
                                 const ServerIdentity& server) {
  // Workers pull as themselves or as a tool (their evaluations); monitors as tools.
  if (caller.role == CallerRole::kParameterServer ||
      (caller.role == CallerRole::kMonitor && request.worker_id() != kToolWorkerId) ||
      (caller.role == CallerRole::kWorker && request.worker_id() != kToolWorkerId &&
       request.worker_id() != caller.index)) {
    return Denied("Pull", caller, absl::StrCat("pull as worker ", request.worker_id()));
  }
  absl::Status plan = CheckPlan("Pull", request.plan_fingerprint(), request.model(),
                                request.num_shards(), request.shard_index(), true, server);
  if (!plan.ok()) return plan;
  if (request.weight_average() && !server.keeps_weight_average) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "Pull: the weight average was asked for, but parameter server %d keeps none; start "
        "the parameter servers with --weight_ema_decay > 0 (e.g. 0.9999)",
        server.shard_index));
  }
  FieldErrors errors("Pull");
  if (request.worker_id() != kToolWorkerId) CheckMember(errors, request.worker_id(), server);
  if (request.training() && request.worker_id() == kToolWorkerId) {
    errors.Add("training: a tool's pull (worker_id %d) computes no gradients", kToolWorkerId);
  }
  if (request.training() && request.weight_average()) {
    errors.Add(
        "training: gradients are computed from the weights, not their average "
        "(weight_average)");
  }
  CheckPayloadDtype(errors, "parameters_dtype", request.parameters_dtype());
  if (request.min_sync_step() < 0) {
    errors.Add("min_sync_step: %d, expected >= 0", request.min_sync_step());
  } else if (request.min_sync_step() > 0 && !(server.sync_replicas && server.shard_index == 0)) {
    errors.Add("min_sync_step: %d, but only server 0 of a --sync_replicas cluster counts steps",
               request.min_sync_step());
  }
  if (request.has_sync_decision()) {
    const ps::v1::SyncDecision& decision = request.sync_decision();
    if (request.worker_id() == kToolWorkerId) {
      errors.Add("sync_decision: only a member relays server 0's decisions, not a tool");
    } else if (!server.sync_replicas || server.shard_index == 0) {
      errors.Add("sync_decision: server %d %s", server.shard_index,
                 server.sync_replicas ? "makes the decisions" : "does not run --sync_replicas");
    } else {
      if (decision.step() < 0) errors.Add("sync_decision.step: %d, expected >= 0", decision.step());
      if (decision.worker_ids_size() < 1 || decision.worker_ids_size() > server.num_workers ||
          decision.examples_size() != decision.worker_ids_size()) {
        errors.Add(
            "sync_decision: %d workers with %d example counts, expected 1 to %d workers with one "
            "count each",
            decision.worker_ids_size(), decision.examples_size(), server.num_workers);
      } else {
        std::vector<bool> seen(server.num_workers, false);
        for (int i = 0; i < decision.worker_ids_size(); ++i) {
          const int32_t id = decision.worker_ids(i);
          if (id < 0 || id >= server.num_workers || seen[id]) {
            errors.Add("sync_decision.worker_ids[%d]: %d, expected distinct members [0, %d)", i, id,
                       server.num_workers);
            break;
          }
          seen[id] = true;
          if (decision.examples(i) < 1 || decision.examples(i) > kMaxExamplesPerPush) {
            errors.Add("sync_decision.examples[%d]: %d, expected 1 to %d", i, decision.examples(i),
                       kMaxExamplesPerPush);
            break;
          }
        }
      }
      if (decision.dropped_worker_ids_size() > kMaxDroppedPerDecision ||
          decision.dropped_examples_size() != decision.dropped_worker_ids_size()) {
        errors.Add(
            "sync_decision: %d dropped gradients with %d example counts, expected at most %d "
            "with one count each",
            decision.dropped_worker_ids_size(), decision.dropped_examples_size(),
            kMaxDroppedPerDecision);
      } else {
        for (int i = 0; i < decision.dropped_worker_ids_size(); ++i) {
          const int32_t id = decision.dropped_worker_ids(i);
          const int64_t n = decision.dropped_examples(i);
          if (id < 0 || id >= server.num_workers || n < 1 || n > kMaxExamplesPerPush) {
            errors.Add(
                "sync_decision.dropped[%d]: worker %d with %d examples, expected a member [0, %d) "
                "with 1 to %d",
                i, id, n, server.num_workers, kMaxExamplesPerPush);
            break;
          }
        }
      }
    }
  }
  return errors.status();
}

absl::StatusOr<ValidatedPush> ValidatePushRequest(const Caller& caller,
                                                  const ps::v1::PushRequest& request,
                                                  const ServerIdentity& server,
                                                  const ParameterShard& shard) {
  absl::Status rights = CheckActsAsItself("Push", caller, request.worker_id(), "push");
  if (!rights.ok()) return rights;
  absl::Status plan = CheckPlan("Push", request.plan_fingerprint(), request.model(),
                                request.num_shards(), request.shard_index(), true, server);
  if (!plan.ok()) return plan;
  if (request.has_sync_step() != server.sync_replicas) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "Push: parameter server %d %s, but worker %d pushes %s; give every process the same "
        "--sync_replicas",
        server.shard_index,
        server.sync_replicas ? "trains synchronously (--sync_replicas)" : "trains asynchronously",
        request.worker_id(),
        request.has_sync_step() ? "for a synchronous step" : "asynchronously"));
  }
  FieldErrors errors("Push");
  if (request.has_sync_step() && request.sync_step() < 0) {
    errors.Add("sync_step: %d, expected >= 0", request.sync_step());
  }
  CheckMember(errors, request.worker_id(), server);
  if (request.example_count() < 1 || request.example_count() > kMaxExamplesPerPush) {
    errors.Add("example_count: %d, expected 1 to %d", request.example_count(),
               kMaxExamplesPerPush);
  }
  if (request.computed_from_version() < 0) {
    errors.Add("computed_from_version: %d, expected >= 0", request.computed_from_version());
  }
  if (request.worker_steps() < 0) {
    errors.Add("worker_steps: %d, expected >= 0", request.worker_steps());
  }
  if (!std::isfinite(request.worker_images_per_sec()) || request.worker_images_per_sec() < 0) {
    errors.Add("worker_images_per_sec: %g, expected a finite value >= 0",
               request.worker_images_per_sec());
  }
  CheckPayloadDtype(errors, "gradients_dtype", request.gradients_dtype());
  // The gradients' size only in a known format (its error says why otherwise).
  const WireDtype gradients_dtype = ToWireDtype(request.gradients_dtype());
  if (ps::v1::PayloadDtype_IsValid(request.gradients_dtype())) {
    CheckPayloadSize(errors, "gradients", request.gradients().size(), shard.parameter_count(),
                     gradients_dtype, /*may_be_empty=*/false);
  }
  CheckPayloadSize(errors, "batch_stats", request.batch_stats().size(), shard.state_count(),
                   WireDtype::kFloat32, /*may_be_empty=*/true);
  absl::Status fields = errors.status();
  if (!fields.ok()) return fields;

  if (request.server_incarnation() != 0 && request.server_incarnation() != server.incarnation) {
    return absl::AbortedError(absl::StrFormat(
        "Push: worker %d's gradients were computed from weights parameter server %d served "
        "before it restarted; pull again",
        request.worker_id(), server.shard_index));
  }

  // Decoded to float32 here, before any check of the values: what the shard checks and
  // applies is what the worker's rounding left.
  std::vector<float> decoded;
  const bool views =
      gradients_dtype == WireDtype::kFloat32 &&
      reinterpret_cast<uintptr_t>(request.gradients().data()) % alignof(float) == 0 &&
      reinterpret_cast<uintptr_t>(request.batch_stats().data()) % alignof(float) == 0;
  if (!views) decoded.resize(shard.parameter_count() + shard.state_count());
  const absl::Span<const float> gradients =
      FloatsOf(request.gradients(), gradients_dtype, decoded, 0);
  const absl::Span<const float> batch_stats =
      FloatsOf(request.batch_stats(), WireDtype::kFloat32, decoded, shard.parameter_count());
  absl::StatusOr<ShardUpdate> update = ShardUpdate::Check(
      shard, absl::StrCat("push from worker ", request.worker_id()),
      request.computed_from_version(), request.example_count(), gradients, batch_stats);
  if (!update.ok()) return update.status();
  ValidatedPush push(*std::move(update));
  push.worker_id = request.worker_id();
  push.request_id = request.request_id();
  push.reported_steps = request.worker_steps();
  push.images_per_sec = request.worker_images_per_sec();
  push.sync_step = request.has_sync_step() ? request.sync_step() : -1;
  push.last_of_share = request.last_of_share();
  push.decoded = std::move(decoded);  // the spans stay valid: the buffer moves
  return push;
}

absl::Status ValidateEvaluationReport(const Caller& caller, const ps::v1::EvaluationReport& request,
                                      const ServerIdentity& server) {
  if (caller.role != CallerRole::kTrusted && !caller.is_chief()) {
    return Denied("ReportEvaluation", caller, "report evaluations (only the chief, worker-0)");
  }
  absl::Status plan = CheckPlan("ReportEvaluation", request.plan_fingerprint(), request.model(),
                                request.num_shards(), -1, false, server);
  if (!plan.ok()) return plan;
  FieldErrors errors("ReportEvaluation");
  if (request.worker_id() != 0) {
    errors.Add("worker_id: %d; only the chief (worker 0) reports evaluations",
               request.worker_id());
  }
  if (request.examples() < 0 || request.examples() > kMaxEvaluationExamples ||
      request.correct() < 0 || request.correct() > request.examples()) {
    errors.Add("correct, examples: %d correct of %d; expected 0 <= correct <= examples <= %d",
               request.correct(), request.examples(), kMaxEvaluationExamples);
  }
  if (!std::isfinite(request.loss()) || request.loss() < 0) {
    errors.Add("loss: %g, expected a finite value >= 0", request.loss());
  }
  if (request.average_examples() < 0 || request.average_examples() > kMaxEvaluationExamples ||
      request.average_correct() < 0 || request.average_correct() > request.average_examples()) {
    errors.Add(
        "average_correct, average_examples: %d correct of %d; expected 0 <= average_correct <= "
        "average_examples <= %d",
        request.average_correct(), request.average_examples(), kMaxEvaluationExamples);
  }
  if (!std::isfinite(request.average_loss()) || request.average_loss() < 0) {
    errors.Add("average_loss: %g, expected a finite value >= 0", request.average_loss());
  }
  if (request.global_step() < 0) {
    errors.Add("global_step: %d, expected >= 0", request.global_step());
  }
  const absl::Status names = CheckClassNames(
      std::vector<std::string>(request.class_names().begin(), request.class_names().end()),
      server.num_classes);
  if (!names.ok()) errors.Add("class_names: %s", names.message());
  return errors.status();
}

absl::Status ValidateFinishRequest(const Caller& caller, const ps::v1::FinishRequest& request,
                                   const ServerIdentity& server) {
  absl::Status rights = CheckActsAsItself("Finish", caller, request.worker_id(), "finish");
  if (!rights.ok()) return rights;
  if (request.training_complete() && caller.role != CallerRole::kTrusted && !caller.is_chief()) {
    return Denied("Finish", caller, "end the training (only the chief, worker-0)");
  }
  absl::Status plan = CheckPlan("Finish", request.plan_fingerprint(), request.model(),
                                request.num_shards(), -1, false, server);
  if (!plan.ok()) return plan;
  FieldErrors errors("Finish");
  CheckMember(errors, request.worker_id(), server);
  if (request.training_complete() && request.worker_id() != 0) {
    errors.Add("training_complete: only the chief (worker 0) ends the training, not worker %d",
               request.worker_id());
  }
  return errors.status();
}

absl::Status ValidateLeaseRequest(const Caller& caller, const ps::v1::LeaseRequest& request,
                                  const ServerIdentity& server) {
  absl::Status rights = CheckActsAsItself("LeaseData", caller, request.worker_id(), "lease data");
  if (!rights.ok()) return rights;
  if (server.max_workers <= 0 || server.shard_index != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "LeaseData: parameter server %d %s; data is leased only by server 0 of a cluster with "
        "elastic workers (--max_workers)",
        server.shard_index,
        server.max_workers <= 0 ? "runs without --max_workers" : "is not server 0"));
  }
  absl::Status plan = CheckPlan("LeaseData", request.plan_fingerprint(), request.model(),
                                request.num_shards(), -1, false, server);
  if (!plan.ok()) return plan;
  FieldErrors errors("LeaseData");
  CheckMember(errors, request.worker_id(), server);
  const ps::v1::DataPlan& data = request.data();
  if (data.num_examples() < 1 || data.num_examples() > kMaxDataExamples) {
    errors.Add("data.num_examples: %d, expected 1 to %d (a worker numbers examples with int)",
               data.num_examples(), kMaxDataExamples);
  }
  if (data.blocks_per_epoch() < 1 || data.blocks_per_epoch() > data.num_examples()) {
    errors.Add("data.blocks_per_epoch: %d, expected 1 to num_examples (%d)",
               data.blocks_per_epoch(), data.num_examples());
  }
  if (data.epochs() < 1) errors.Add("data.epochs: %d, expected >= 1", data.epochs());
  if (static_cast<int64_t>(data.epochs()) * data.blocks_per_epoch() > kMaxDataBlocks) {
    errors.Add("data: %d epochs of %d blocks, expected at most %d blocks in all", data.epochs(),
               data.blocks_per_epoch(), kMaxDataBlocks);
  }
  std::set<std::pair<int32_t, int32_t>> completed;
  for (const auto& [field, blocks] : {std::make_pair("completed", &request.completed()),
                                      std::make_pair("held", &request.held())}) {
    if (blocks->size() > kMaxLeaseBlocksListed) {
      errors.Add("%s: %d blocks, expected at most %d", field, blocks->size(),
                 kMaxLeaseBlocksListed);
      continue;
    }
    std::set<std::pair<int32_t, int32_t>> listed;
    for (const ps::v1::DataBlock& block : *blocks) {
      if (block.epoch() < 0 || block.block() < 0) {
        errors.Add("%s: block %d of epoch %d, expected both >= 0", field, block.block(),
                   block.epoch());
      }
      const std::pair<int32_t, int32_t> key(block.epoch(), block.block());
      if (!listed.insert(key).second) {
        errors.Add("%s: block %d of epoch %d listed twice", field, block.block(), block.epoch());
      } else if (blocks == &request.held() && completed.count(key) > 0) {
        errors.Add("held: block %d of epoch %d is also completed", block.block(), block.epoch());
      }
    }
    if (blocks == &request.completed()) completed = std::move(listed);
  }
  return errors.status();
}

}  // namespace mobilenet
