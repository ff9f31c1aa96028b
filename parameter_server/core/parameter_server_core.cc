#include "parameter_server/core/parameter_server_core.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/check.h"
#include "common/float_conversion.h"
#include "common/status_macros.h"
#include "parameter_server/core/payload_dtype.h"

namespace mobilenet {
namespace {

// A random nonzero 64-bit value.
uint64_t RandomIncarnation() {
  std::random_device device;
  uint64_t value = 0;
  while (value == 0) value = (static_cast<uint64_t>(device()) << 32) ^ device();
  return value;
}

double UnixSecondsOf(absl::Time time) { return absl::ToDoubleSeconds(time - absl::UnixEpoch()); }

// Bytes of a PullResponse's fields besides the payloads (version, incarnation, headers).
constexpr int64_t kPullResponseOverhead = 32;

}  // namespace

absl::StatusOr<std::unique_ptr<ParameterServerCore>> ParameterServerCore::Create(
    const ShardingPlan& plan, const ParameterShardConfig& shard_config,
    const CoreOptions& options) {
  if (options.shard_index < 0 || options.shard_index >= plan.num_shards()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "parameter server %d of a plan for %d: expected 0 <= index < %d", options.shard_index,
        plan.num_shards(), plan.num_shards()));
  }
  if (options.num_workers < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("a cluster of %d workers; expected at least 1", options.num_workers));
  }
  if (options.max_workers != 0 && options.max_workers != options.num_workers) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--max_workers=%d: elastic clusters have that many member slots, not %d",
                        options.max_workers, options.num_workers));
  }
  if (options.max_workers != 0 && !(options.sync.worker_liveness > absl::ZeroDuration())) {
    return absl::InvalidArgumentError("--worker_liveness_secs must be > 0");
  }
  if (options.remembered_receipts_per_worker < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("remembered_receipts_per_worker must be >= 1, got %d",
                        options.remembered_receipts_per_worker));
  }
  if (options.sync.enabled) {
    if (options.sync.replicas_to_aggregate < 0 ||
        options.sync.replicas_to_aggregate > options.num_workers) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--replicas_to_aggregate=%d for a cluster of %d workers; expected 1 to %d, or all",
          options.sync.replicas_to_aggregate, options.num_workers, options.num_workers));
    }
    if (shard_config.staleness_policy != StalenessPolicy::kApply) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--staleness_policy=%s with --sync_replicas: a synchronous step applies only fresh "
          "gradients; use --staleness_policy=apply",
          StalenessPolicyName(shard_config.staleness_policy)));
    }
    if (options.sync.worker_liveness <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError("--worker_liveness_secs must be > 0");
    }
  }
  ASSIGN_OR_RETURN(
      std::unique_ptr<ParameterShard> shard,
      ParameterShard::Create(plan.parameter_layout(), plan.state_layout(),
                             plan.shard(options.shard_index), shard_config, options.num_workers));
  ServerIdentity identity;
  identity.shard_index = options.shard_index;
  identity.num_shards = plan.num_shards();
  identity.plan_fingerprint = plan.fingerprint();
  identity.model = plan.model();
  identity.num_workers = options.num_workers;
  identity.incarnation = options.incarnation != 0 ? options.incarnation : RandomIncarnation();
  identity.keeps_weight_average = shard->keeps_weight_average();
  identity.sync_replicas = options.sync.enabled;
  identity.max_workers = options.max_workers;
  if (absl::StatusOr<MobileNetConfig> model = ParseModelConfigString(plan.model()); model.ok()) {
    identity.num_classes = model->num_classes;
  }
  return std::unique_ptr<ParameterServerCore>(
      new ParameterServerCore(plan, std::move(identity), std::move(shard), options));
}

ParameterServerCore::ParameterServerCore(const ShardingPlan& plan, ServerIdentity identity,
                                         std::unique_ptr<ParameterShard> shard,
                                         const CoreOptions& options)
    : plan_(plan),
      identity_(std::move(identity)),
      shard_(std::move(shard)),
      ledger_(options.num_workers, options.remembered_receipts_per_worker,
              options.sync.worker_liveness > absl::ZeroDuration() ? options.sync.worker_liveness
                                                                  : absl::Seconds(30)),
      start_time_(absl::Now()),
      transport_security_(options.transport_security),
      insecure_(options.insecure),
      sync_(options.sync),
      sync_gradients_(options.sync.enabled ? options.num_workers : 0, shard_->parameter_count(),
                      shard_->state_count()) {}

void ParameterServerCore::CountRefusal(Refusal refusal, const absl::Status& status,
                                       const Caller& caller, int64_t worker_id) {
  const bool denied = absl::IsPermissionDenied(status);
  // A worker is heard from only when it is who it says it is.
  if (!denied && ledger_.IsMember(worker_id)) {
    ledger_.RecordContact(static_cast<int32_t>(worker_id), absl::Now());
  }
  absl::MutexLock lock(&stats_mu_);
  if (denied) {
    ++requests_denied_;
    return;
  }
  switch (refusal) {
    case Refusal::kInvalidPush:
      ++pushes_invalid_;
      break;
    case Refusal::kStalePush:
      ++pushes_rejected_stale_;
      break;
    case Refusal::kPushFromEarlierRun:
      ++pushes_restarted_;
      break;
    case Refusal::kOther:
      break;
  }
}

absl::StatusOr<int64_t> ParameterServerCore::Pull(const Caller& caller,
                                                  const ps::v1::PullRequest& request,
                                                  absl::Span<float> parameters,
                                                  absl::Span<float> state, SyncPullInfo* sync) {
  const absl::Status valid = ValidatePullRequest(caller, request, identity_);
  if (!valid.ok()) {
    CountRefusal(Refusal::kOther, valid, caller, request.worker_id());
    return valid;
  }
  const bool with_state = request.include_state() && shard_->state_count() > 0;
  MOBILENET_CHECK(with_state || state.empty());
  // A synchronous step changes the weights only under push_mu_, so the weights read
  // under it are exactly those of the step reported.
  // A training pull is a member's pull of the weights (validated).
  const auto read = [&] {
    return request.training()
               ? shard_->PullForTraining(request.worker_id(), parameters, state)
               : shard_->Pull(parameters, state,
                              request.weight_average() ? WeightsKind::kAverage : WeightsKind::kRaw);
  };
  int64_t version = 0;
  if (sync_.enabled) {
    // A synchronous step changes the weights only under push_mu_, so the weights read
    // under it are exactly those of the step reported.
    absl::MutexLock push_lock(&push_mu_);
    // Not there yet: the caller asks again; the buffers stay untouched.
    if (!PrepareSyncPull(request, sync)) return shard_->version();
    version = read();
  } else {
    version = read();
  }
  if (ledger_.IsMember(request.worker_id())) ledger_.RecordContact(request.worker_id(), absl::Now());
  absl::MutexLock lock(&stats_mu_);
  bytes_in_ += static_cast<int64_t>(request.ByteSizeLong());
  // The parameters leave in the asked-for format (the transport encodes them).
  bytes_out_ += static_cast<int64_t>(parameters.size() *
                                         BytesPerValue(ToWireDtype(request.parameters_dtype())) +
                                     state.size() * sizeof(float)) +
                kPullResponseOverhead;
  return version;
}

absl::Status ParameterServerCore::Push(const Caller& caller, const ps::v1::PushRequest& request,
                                       ps::v1::PushResponse& response) {
  response.Clear();
  const int64_t bytes_in = static_cast<int64_t>(request.ByteSizeLong());
  {
    absl::MutexLock lock(&stats_mu_);
    bytes_in_ += bytes_in;
  }
  absl::StatusOr<ValidatedPush> push = ValidatePushRequest(caller, request, identity_, *shard_);
  if (!push.ok()) {
    // Validation's only ABORTED: weights pulled from an earlier run of this server.
    CountRefusal(
        absl::IsAborted(push.status()) ? Refusal::kPushFromEarlierRun : Refusal::kInvalidPush,
        push.status(), caller, request.worker_id());
    return push.status();
  }
  const absl::Time now = absl::Now();
  absl::MutexLock push_lock(&push_mu_);
  if (std::optional<PushReceipt> receipt = ledger_.FindReceipt(push->worker_id, push->request_id)) {
    ledger_.RecordContact(push->worker_id, now);
    response.set_version(receipt->version);
    response.set_staleness(receipt->staleness);
    response.set_learning_rate(receipt->learning_rate);
    response.set_duplicate(true);
    absl::MutexLock lock(&stats_mu_);
    ++pushes_duplicate_;
    bytes_out_ += static_cast<int64_t>(response.ByteSizeLong());
    return absl::OkStatus();
  }
  if (sync_.enabled) return PushSync(*push, now, response);
  const absl::Time apply_start = absl::Now();
  absl::StatusOr<AppliedUpdate> applied = shard_->Apply(push->update, push->worker_id);
  const absl::Duration apply_time = absl::Now() - apply_start;
  if (!applied.ok()) {
    // The shard's only ABORTED: too stale under the reject policy.
    CountRefusal(absl::IsAborted(applied.status()) ? Refusal::kStalePush : Refusal::kInvalidPush,
                 applied.status(), caller, push->worker_id);
    return applied.status();
  }
  const PushReceipt receipt{applied->version, applied->staleness, applied->learning_rate};
  ledger_.RecordPush(push->worker_id, push->request_id, receipt, push->update.example_count(),
                     push->reported_steps, push->images_per_sec, now);
  changes_.fetch_add(1, std::memory_order_release);
  response.set_version(receipt.version);
  response.set_staleness(receipt.staleness);
  response.set_learning_rate(receipt.learning_rate);
  absl::MutexLock lock(&stats_mu_);
  ++pushes_applied_;
  staleness_.Add(applied->staleness);
  apply_time_.Add(apply_time);
  bytes_out_ += static_cast<int64_t>(response.ByteSizeLong());
  return absl::OkStatus();
}

bool ParameterServerCore::PrepareSyncPull(const ps::v1::PullRequest& request, SyncPullInfo* sync) {
  if (ledger_.IsMember(request.worker_id()))
    ledger_.RecordContact(request.worker_id(), absl::Now());
  if (!sync_leader()) {
    // Only a step not applied yet: decisions relayed late (an older one overtaken by a
    // newer one, or the one a restored checkpoint already holds) are not applied again.
    if (request.has_sync_decision() && request.sync_decision().step() >= sync_step_) {
      // Decisions this server never received (it restarted from an older checkpoint) are
      // lost to it: counted incomplete.
      sync_incomplete_ += request.sync_decision().step() - sync_step_;
      ApplySyncStep(request.sync_decision(), absl::Now());
    }
    return true;
  }
  // Liveness changes with time alone: a member gone quiet may lower the need.
  TryCloseStep(absl::Now());
  if (sync != nullptr) {
    sync->step = sync_step_;
    sync->decision = sync_decision_;
    sync->reached = sync_step_ >= request.min_sync_step();
  }
  return sync_step_ >= request.min_sync_step();
}

absl::Status ParameterServerCore::PushSync(const ValidatedPush& push, absl::Time now,
                                           ps::v1::PushResponse& response) {
  ledger_.RecordContact(push.worker_id, now);
  // With elastic workers the leases say whether a worker has data left; a push only says
  // when its last block's gradients are in.
  if (!elastic() || push.last_of_share) {
    ledger_.RecordShareDone(push.worker_id, push.last_of_share);
  }
  if (sync_leader()) {
    if (push.sync_step < sync_step_) {
      // Dropped, but its last_of_share still counts: the steps stop waiting for it.
      TryCloseStep(now);
      ++sync_dropped_;
      if (sync_dropped_pending_.size() < kMaxDroppedPending) {
        sync_dropped_pending_.emplace_back(push.worker_id, push.update.example_count());
      }
      return absl::AbortedError(absl::StrFormat(
          "push from worker %d for synchronous step %d dropped: the step closed without it "
          "(server 0 is at step %d); pull again",
          push.worker_id, push.sync_step, sync_step_));
    }
    if (push.sync_step > sync_step_) {
      absl::MutexLock lock(&stats_mu_);
      ++pushes_invalid_;
      return absl::InvalidArgumentError(absl::StrFormat(
          "push from worker %d for synchronous step %d, but server 0 is only at step %d",
          push.worker_id, push.sync_step, sync_step_));
    }
  }
  sync_gradients_.Store(push.worker_id, push.sync_step, push.request_id, push.reported_steps,
                        push.images_per_sec, push.update);
  if (sync_leader()) {
    if (std::find(sync_counted_.begin(), sync_counted_.end(), push.worker_id) ==
        sync_counted_.end()) {
      sync_counted_.push_back(push.worker_id);
    }
    TryCloseStep(now);
  }
  response.set_version(shard_->version());
  response.set_learning_rate(shard_->learning_rate());
  response.set_sync_pending(true);
  absl::MutexLock lock(&stats_mu_);
  bytes_out_ += static_cast<int64_t>(response.ByteSizeLong());
  return absl::OkStatus();
}

void ParameterServerCore::TryCloseStep(absl::Time now) {
  const std::vector<MemberLiveness> members = ledger_.Liveness(now);
  sync_needed_ = SyncGradientsNeeded(sync_, members, sync_counted_);
  const int counted = static_cast<int>(sync_counted_.size());
  if (counted < sync_needed_) {
    sync_waiting_ = SyncWaitingReason(sync_, sync_step_, counted, sync_needed_, members);
    return;
  }
  ps::v1::SyncDecision decision;
  decision.set_step(sync_step_);
  for (int i = 0; i < sync_needed_; ++i) {
    const int32_t worker = sync_counted_[i];
    decision.add_worker_ids(worker);
    decision.add_examples(sync_gradients_.held(worker).examples);
  }
  // Counted beyond the need (the need fell since they came): dropped like a backup's.
  for (int i = sync_needed_; i < counted; ++i) {
    const int32_t worker = sync_counted_[i];
    ++sync_dropped_;
    sync_dropped_pending_.emplace_back(worker, sync_gradients_.held(worker).examples);
  }
  while (!sync_dropped_pending_.empty() &&
         decision.dropped_worker_ids_size() < kMaxDroppedPerDecision) {
    decision.add_dropped_worker_ids(sync_dropped_pending_.front().first);
    decision.add_dropped_examples(sync_dropped_pending_.front().second);
    sync_dropped_pending_.pop_front();
  }
  sync_counted_.clear();
  sync_waiting_.clear();
  ApplySyncStep(decision, now);
}

void ParameterServerCore::ApplySyncStep(const ps::v1::SyncDecision& decision, absl::Time now) {
  const std::vector<int32_t> workers(decision.worker_ids().begin(), decision.worker_ids().end());
  // Validated: counts in range, so no sum overflows.
  int64_t examples = 0;
  for (const int64_t n : decision.examples()) examples += n;
  for (const int64_t n : decision.dropped_examples()) examples += n;
  const int64_t averaged_pushes = static_cast<int64_t>(workers.size());
  const int64_t pushes = averaged_pushes + decision.dropped_worker_ids_size();
  const SyncGradients::Average held =
      sync_gradients_.AverageOf(decision.step(), workers, sync_average_, sync_average_stats_);
  const absl::Time apply_start = absl::Now();
  absl::Status applied = absl::OkStatus();
  float learning_rate = shard_->learning_rate();
  if (held.gradients > 0) {
    absl::StatusOr<ShardUpdate> update = ShardUpdate::CheckAggregate(
        *shard_, absl::StrCat("synchronous step ", decision.step()), shard_->version(), pushes,
        held.gradients, examples, sync_average_, sync_average_stats_);
    if (update.ok()) {
      absl::StatusOr<AppliedUpdate> result = shard_->Apply(*update);
      applied = result.status();
      if (result.ok()) learning_rate = result->learning_rate;
    } else {
      applied = update.status();
    }
  }
  if (held.gradients == 0 || !applied.ok()) {
    // Nothing (or nothing applicable) to apply: the counters still follow server 0's, so
    // that every server's version and examples keep describing the same steps.
    const absl::Status counted = shard_->CountWithoutUpdate(pushes, examples);
    MOBILENET_CHECK(counted.ok());
  }
  const bool incomplete = held.gradients < averaged_pushes || !applied.ok();
  if (incomplete) ++sync_incomplete_;
  const absl::Duration apply_time = absl::Now() - apply_start;
  const PushReceipt receipt{shard_->version(), 0, learning_rate};
  for (int i = 0; i < decision.worker_ids_size(); ++i) {
    const int32_t worker = decision.worker_ids(i);
    const SyncGradients::Held& mine = sync_gradients_.held(worker);
    const bool have = mine.step == decision.step();
    ledger_.RecordPush(worker, have ? mine.request_id : 0, receipt, decision.examples(i),
                       have ? mine.reported_steps : 0, have ? mine.images_per_sec : 0.0, now);
  }
  // Dropped: counted for the worker (its data moved on), never applied.
  for (int i = 0; i < decision.dropped_worker_ids_size(); ++i) {
    const int32_t worker = decision.dropped_worker_ids(i);
    const SyncGradients::Held& mine = sync_gradients_.held(worker);
    ledger_.RecordPush(worker, 0, receipt, decision.dropped_examples(i), mine.reported_steps,
                       mine.images_per_sec, now);
  }
  sync_step_ = decision.step() + 1;
  ledger_.SetSyncSteps(sync_step_);
  sync_decision_ = decision;
  changes_.fetch_add(1, std::memory_order_release);
  absl::MutexLock lock(&stats_mu_);
  pushes_applied_ += averaged_pushes;
  for (int64_t i = 0; i < averaged_pushes; ++i) staleness_.Add(0);
  apply_time_.Add(apply_time);
}

PushDistributions ParameterServerCore::GetPushDistributions() const {
  absl::MutexLock lock(&stats_mu_);
  return PushDistributions{staleness_, apply_time_};
}

std::vector<double> ParameterServerCore::ApplyTimeBounds() {
  // From a small shard's update (~1 ms) to a whole MobileNet's on a busy machine (~seconds).
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
}

absl::Status ParameterServerCore::ReportEvaluation(const Caller& caller,
                                                   const ps::v1::EvaluationReport& request) {
  const absl::Status valid = ValidateEvaluationReport(caller, request, identity_);
  if (!valid.ok()) {
    CountRefusal(Refusal::kOther, valid, caller, request.worker_id());
    return valid;
  }
  const absl::Status names = ledger_.RecordClassNames(
      std::vector<std::string>(request.class_names().begin(), request.class_names().end()));
  if (!names.ok()) {
    CountRefusal(Refusal::kOther, names, caller, request.worker_id());
    return names;
  }
  const absl::Time now = absl::Now();
  ledger_.RecordContact(request.worker_id(), now);
  Evaluation evaluation;
  evaluation.global_step = request.global_step();
  evaluation.examples = request.examples();
  evaluation.correct = request.correct();
  evaluation.loss = request.loss();
  evaluation.average_examples = request.average_examples();
  evaluation.average_correct = request.average_correct();
  evaluation.average_loss = request.average_loss();
  evaluation.unix_seconds = UnixSecondsOf(now);
  ledger_.RecordEvaluation(evaluation);
  changes_.fetch_add(1, std::memory_order_release);
  return absl::OkStatus();
}

void ParameterServerCore::ReclaimLeasesLocked(absl::Time now) const {
  if (!elastic() || identity_.shard_index != 0 || !leases_.has_plan()) return;
  const std::vector<ReturnedBlocks> reclaimed =
      leases_.Reclaim(ledger_.Liveness(now), sync_.worker_liveness);
  if (!reclaimed.empty()) changes_.fetch_add(1, std::memory_order_release);
  for (const ReturnedBlocks& returned : reclaimed) {
    ledger_.SetLatestEventDetail(returned.worker_id,
                                 absl::StrFormat("%d data block%s returned", returned.blocks,
                                                 returned.blocks == 1 ? "" : "s"));
  }
}

absl::Status ParameterServerCore::LeaseData(const Caller& caller,
                                            const ps::v1::LeaseRequest& request,
                                            ps::v1::LeaseResponse& response) {
  response.Clear();
  const absl::Status valid = ValidateLeaseRequest(caller, request, identity_);
  if (!valid.ok()) {
    CountRefusal(Refusal::kOther, valid, caller, request.worker_id());
    return valid;
  }
  const int32_t worker = request.worker_id();
  const absl::Time now = absl::Now();
  ledger_.RecordContact(worker, now);
  bool share_done = false;
  {
    absl::MutexLock lock(&leases_mu_);
    ReclaimLeasesLocked(now);
    // At most kMaxLeaseBlocksListed each (validated).
    const std::vector<ps::v1::DataBlock> completed(request.completed().begin(),
                                                   request.completed().end());
    const std::vector<ps::v1::DataBlock> held(request.held().begin(), request.held().end());
    const absl::Status leased =
        leases_.Lease(worker, request.data(), completed, held, now, response);
    if (!leased.ok()) {
      CountRefusal(Refusal::kOther, leased, caller, worker);
      return leased;
    }
    // No block left to train: a synchronous step no longer waits for this worker.
    share_done = leases_.HeldBy(worker) == 0;
  }
  ledger_.RecordShareDone(worker, share_done);
  changes_.fetch_add(1, std::memory_order_release);
  if (sync_leader()) {
    absl::MutexLock push_lock(&push_mu_);
    TryCloseStep(now);
  }
  return absl::OkStatus();
}

absl::Status ParameterServerCore::Finish(const Caller& caller,
                                         const ps::v1::FinishRequest& request) {
  const absl::Status valid = ValidateFinishRequest(caller, request, identity_);
  if (!valid.ok()) {
    CountRefusal(Refusal::kOther, valid, caller, request.worker_id());
    return valid;
  }
  const bool ends =
      ledger_.RecordFinish(request.worker_id(), request.training_complete(), absl::Now());
  {
    // A finished member's blocks are leased to others.
    absl::MutexLock lock(&leases_mu_);
    ReclaimLeasesLocked(absl::Now());
  }
  changes_.fetch_add(1, std::memory_order_release);
  if (sync_leader()) {
    // A finished member is no longer waited for.
    absl::MutexLock push_lock(&push_mu_);
    TryCloseStep(absl::Now());
  }
  if (ends) RequestFinish();
  return absl::OkStatus();
}

ps::v1::StatusResponse ParameterServerCore::GetStatus() const {
  ps::v1::StatusResponse response;
  response.set_shard_index(identity_.shard_index);
  response.set_num_shards(identity_.num_shards);
  response.set_plan_fingerprint(identity_.plan_fingerprint);
  response.set_model(identity_.model);
  for (const std::vector<TensorSlice>* slices : {&shard_->spec().parameters,
                                                 &shard_->spec().state}) {
    for (const TensorSlice& slice : *slices) {
      ps::v1::SliceInfo* info = response.add_slices();
      info->set_tensor(slice.tensor);
      info->set_begin(slice.begin);
      info->set_end(slice.end);
    }
  }
  response.set_parameter_count(shard_->parameter_count());
  response.set_state_count(shard_->state_count());
  response.set_parameter_bytes(shard_->parameter_count() * sizeof(float));
  response.set_state_bytes(shard_->state_count() * sizeof(float));
  const int64_t examples_seen = shard_->examples_seen();
  const int64_t per_epoch = shard_->config().learning_rate.examples_per_epoch;
  response.set_global_step(shard_->version());
  response.set_examples_seen(examples_seen);
  response.set_epoch(per_epoch > 0 ? static_cast<double>(examples_seen) / per_epoch : 0.0);
  response.set_learning_rate(shard_->learning_rate());
  response.set_weight_ema_decay(shard_->config().weight_ema_decay);
  const DelayCompensationCounts dc = shard_->delay_compensation_counts();
  response.set_pushes_compensated(dc.compensated);
  response.set_pushes_uncompensated(dc.uncompensated);

  const absl::Time now = absl::Now();
  response.set_max_workers(identity_.max_workers);
  if (elastic() && identity_.shard_index == 0) {
    absl::MutexLock lock(&leases_mu_);
    ReclaimLeasesLocked(now);
    leases_.FillStatus(now, *response.mutable_data_leases());
  }
  ledger_.FillStatus(now, response);
  int live = 0;
  for (const MemberLiveness& member : ledger_.Liveness(now)) {
    live += !member.finished && IsAlive(member, sync_.worker_liveness);
  }
  response.set_live_workers(live);
  if (sync_.enabled) {
    absl::MutexLock push_lock(&push_mu_);
    response.set_sync_replicas(true);
    response.set_replicas_to_aggregate(sync_.replicas_to_aggregate);
    response.set_sync_steps(sync_step_);
    response.set_sync_gradients_needed(sync_leader() ? sync_needed_ : 0);
    response.set_sync_gradients_pending(static_cast<int32_t>(sync_counted_.size()));
    response.set_sync_pushes_dropped(sync_dropped_);
    response.set_sync_steps_incomplete(sync_incomplete_);
    response.set_sync_waiting(sync_waiting_);
  }
  {
    absl::MutexLock lock(&stats_mu_);
    response.set_pushes_applied(pushes_applied_);
    response.set_pushes_rejected_stale(pushes_rejected_stale_);
    response.set_pushes_invalid(pushes_invalid_);
    response.set_pushes_duplicate(pushes_duplicate_);
    response.set_pushes_rejected_restarted(pushes_restarted_);
    response.set_staleness_p50(staleness_.Percentile(0.5));
    response.set_staleness_p90(staleness_.Percentile(0.9));
    response.set_staleness_max(staleness_.max());
    response.set_staleness_mean(staleness_.mean());
    for (const auto& [staleness, pushes] : staleness_.counts()) {
      if (response.staleness_counts_size() == kMaxStalenessCounts) {
        ps::v1::StalenessCount& last = *response.mutable_staleness_counts()->rbegin();
        last.set_pushes(last.pushes() + pushes);
        continue;
      }
      ps::v1::StalenessCount& entry = *response.add_staleness_counts();
      entry.set_staleness(staleness);
      entry.set_pushes(pushes);
    }
    response.set_bytes_in(bytes_in_);
    response.set_bytes_out(bytes_out_);
    response.set_requests_denied(requests_denied_);
    response.set_requests_unauthenticated(requests_unauthenticated_);
  }
  response.set_transport_security(transport_security_);
  response.set_insecure(insecure_);
  absl::MutexLock lock(&lifecycle_mu_);
  if (checkpoint_time_ != absl::InfinitePast()) {
    response.set_last_checkpoint_unix_seconds(UnixSecondsOf(checkpoint_time_));
    response.set_last_checkpoint_step(checkpoint_step_);
    response.set_last_checkpoint_path(checkpoint_path_);
  }
  response.set_uptime_seconds(absl::ToDoubleSeconds(now - start_time_));
  response.set_finishing(finishing_);
  return response;
}

void ParameterServerCore::CountUnauthenticated() {
  absl::MutexLock lock(&stats_mu_);
  ++requests_unauthenticated_;
}

void ParameterServerCore::WaitForFinish() {
  absl::MutexLock lock(&lifecycle_mu_);
  lifecycle_mu_.Await(absl::Condition(&finishing_));
}

bool ParameterServerCore::WaitForFinishWithTimeout(absl::Duration timeout) {
  absl::MutexLock lock(&lifecycle_mu_);
  return lifecycle_mu_.AwaitWithTimeout(absl::Condition(&finishing_), timeout);
}

void ParameterServerCore::RequestFinish() {
  absl::MutexLock lock(&lifecycle_mu_);
  finishing_ = true;
}

bool ParameterServerCore::finishing() const {
  absl::MutexLock lock(&lifecycle_mu_);
  return finishing_;
}

void ParameterServerCore::SetLastCheckpoint(absl::Time time, int64_t step, std::string path) {
  absl::MutexLock lock(&lifecycle_mu_);
  checkpoint_time_ = time;
  checkpoint_step_ = step;
  checkpoint_path_ = std::move(path);
}

CoreState ParameterServerCore::ExportState() const {
  absl::MutexLock push_lock(&push_mu_);
  CoreState state;
  state.shard = shard_->ExportState();
  state.ledger = ledger_.Export();
  absl::MutexLock lock(&leases_mu_);
  state.ledger.data_leases = leases_.Export();
  return state;
}

absl::Status ParameterServerCore::RestoreState(const CoreState& state) {
  RETURN_IF_ERROR(CheckCoreState(state, plan_.state_layout()));
  absl::MutexLock push_lock(&push_mu_);
  // The shard may still refuse (a tensor its slices need is missing); the ledger, checked
  // above, cannot.
  RETURN_IF_ERROR(shard_->RestoreState(state.shard));
  const absl::Status ledger = ledger_.Restore(state.ledger);
  MOBILENET_CHECK(ledger.ok());
  {
    absl::MutexLock lock(&leases_mu_);
    const absl::Status leases = leases_.Restore(state.ledger.data_leases);
    MOBILENET_CHECK(leases.ok());  // checked with the ledger
  }
  sync_step_ = state.ledger.sync_steps;
  sync_counted_.clear();
  sync_dropped_pending_.clear();
  sync_decision_.reset();
  changes_.fetch_add(1, std::memory_order_release);
  return absl::OkStatus();
}

}  // namespace mobilenet
