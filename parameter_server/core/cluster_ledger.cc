#include "parameter_server/core/cluster_ledger.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/check.h"
#include "common/class_names.h"

namespace mobilenet {
namespace {

// Seconds from `then` to `now`: -1 for never (InfinitePast), and 0 for a contact recorded
// after `now` was read (by another thread while this reader waited for the lock), which
// is as fresh as can be, not "never".
double SecondsSince(absl::Time now, absl::Time then) {
  if (then == absl::InfinitePast()) return -1.0;
  return std::max(0.0, absl::ToDoubleSeconds(now - then));
}

}  // namespace

absl::Status CheckLedgerState(const LedgerState& state, int num_workers) {
  if (static_cast<int>(state.workers.size()) != num_workers) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ledger holds %d worker records for a cluster of %d", state.workers.size(), num_workers));
  }
  if (state.sync_steps < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("ledger: %d synchronous steps; expected >= 0", state.sync_steps));
  }
  for (size_t i = 0; i < state.workers.size(); ++i) {
    const WorkerProgress& w = state.workers[i];
    if (w.pushes < 0 || w.examples < 0 || w.reported_steps < 0 || w.examples < w.pushes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "ledger: worker %d has %d pushes, %d examples, %d steps; expected counts >= 0 and at "
          "least one example per push",
          i, w.pushes, w.examples, w.reported_steps));
    }
  }
  if (state.unattributed_pushes < 0 || state.unattributed_examples < state.unattributed_pushes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ledger: %d unattributed pushes with %d examples; expected counts >= 0 and at least one "
        "example per push",
        state.unattributed_pushes, state.unattributed_examples));
  }
  if (state.evaluation.has_value()) {
    const Evaluation& e = *state.evaluation;
    if (e.global_step < 0 || e.examples < 0 || e.correct < 0 || e.correct > e.examples ||
        !std::isfinite(e.loss) || e.loss < 0 || !std::isfinite(e.unix_seconds)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "ledger: evaluation of %d correct of %d examples, loss %g at step %d is impossible",
          e.correct, e.examples, e.loss, e.global_step));
    }
    if (e.average_examples < 0 || e.average_correct < 0 || e.average_correct > e.average_examples ||
        !std::isfinite(e.average_loss) || e.average_loss < 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "ledger: evaluation of the weight average with %d correct of %d examples, loss %g at "
          "step %d is impossible",
          e.average_correct, e.average_examples, e.average_loss, e.global_step));
    }
  }
  const absl::Status names = CheckClassNames(state.class_names, /*num_classes=*/-1);
  if (!names.ok()) return absl::InvalidArgumentError(absl::StrCat("ledger: ", names.message()));
  if (state.data_leases.has_value()) return CheckDataLeaseState(*state.data_leases);
  return absl::OkStatus();
}

ClusterLedger::ClusterLedger(int num_workers, int remembered_receipts, absl::Duration liveness)
    : num_workers_(num_workers), remembered_receipts_(remembered_receipts), liveness_(liveness) {
  MOBILENET_CHECK(num_workers >= 1);
  MOBILENET_CHECK(remembered_receipts >= 1);
  MOBILENET_CHECK(liveness > absl::ZeroDuration());
  absl::MutexLock lock(&mu_);
  members_.resize(num_workers);
  present_.assign(num_workers, false);
}

void ClusterLedger::RecordEventLocked(absl::Time when, int32_t worker_id,
                                      ps::v1::MembershipEvent::Kind kind) const {
  ps::v1::MembershipEvent& event = events_.emplace_back();
  event.set_unix_seconds(absl::ToDoubleSeconds(when - absl::UnixEpoch()));
  event.set_worker_id(worker_id);
  event.set_kind(kind);
  switch (kind) {
    case ps::v1::MembershipEvent::JOINED:
      ++event_totals_.joined;
      break;
    case ps::v1::MembershipEvent::LEFT:
      ++event_totals_.left;
      break;
    case ps::v1::MembershipEvent::FINISHED:
      ++event_totals_.finished;
      break;
    default:
      break;
  }
  while (static_cast<int>(events_.size()) > kMaxMembershipEvents) events_.pop_front();
}

void ClusterLedger::NoteDeparturesLocked(absl::Time now) const {
  for (int id = 0; id < num_workers_; ++id) {
    const absl::Time last_seen = members_[id].last_seen;
    if (!present_[id] || last_seen == absl::InfinitePast() || now - last_seen < liveness_) {
      continue;
    }
    present_[id] = false;
    RecordEventLocked(last_seen + liveness_, id, ps::v1::MembershipEvent::LEFT);
  }
}

void ClusterLedger::SeenLocked(int32_t worker_id, absl::Time now) {
  // Gone quiet since its last contact: it left before it came back.
  NoteDeparturesLocked(now);
  members_[worker_id].last_seen = now;
  if (!present_[worker_id]) {
    present_[worker_id] = true;
    RecordEventLocked(now, worker_id, ps::v1::MembershipEvent::JOINED);
  }
}

void ClusterLedger::NoteDepartures(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  NoteDeparturesLocked(now);
}

void ClusterLedger::SetLatestEventDetail(int32_t worker_id, const std::string& detail) const {
  absl::MutexLock lock(&mu_);
  for (auto it = events_.rbegin(); it != events_.rend(); ++it) {
    if (it->worker_id() != worker_id) continue;
    it->set_detail(detail);
    return;
  }
}

MembershipEventTotals ClusterLedger::membership_event_totals(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  NoteDeparturesLocked(now);
  return event_totals_;
}

std::vector<ps::v1::MembershipEvent> ClusterLedger::MembershipEvents() const {
  absl::MutexLock lock(&mu_);
  return std::vector<ps::v1::MembershipEvent>(events_.begin(), events_.end());
}

std::optional<PushReceipt> ClusterLedger::FindReceipt(int32_t worker_id,
                                                      uint64_t request_id) const {
  MOBILENET_CHECK(IsMember(worker_id));
  absl::MutexLock lock(&mu_);
  const Member& member = members_[worker_id];
  auto it = member.receipts.find(request_id);
  if (it == member.receipts.end()) return std::nullopt;
  return it->second;
}

void ClusterLedger::RecordPush(int32_t worker_id, uint64_t request_id,
                               const PushReceipt& receipt, int64_t examples,
                               int64_t reported_steps, double images_per_sec, absl::Time now) {
  MOBILENET_CHECK(IsMember(worker_id));
  absl::MutexLock lock(&mu_);
  Member& member = members_[worker_id];
  ++member.progress.pushes;
  member.progress.examples += examples;
  member.progress.reported_steps = reported_steps;
  member.progress.finished = false;
  member.images_per_sec = images_per_sec;
  SeenLocked(worker_id, now);
  member.last_push = now;
  member.receipt_order.push_back(request_id);
  member.receipts[request_id] = receipt;
  if (static_cast<int>(member.receipt_order.size()) > remembered_receipts_) {
    member.receipts.erase(member.receipt_order.front());
    member.receipt_order.pop_front();
  }
}

void ClusterLedger::RecordShareDone(int32_t worker_id, bool done) {
  MOBILENET_CHECK(IsMember(worker_id));
  absl::MutexLock lock(&mu_);
  members_[worker_id].share_done = done;
}

void ClusterLedger::RecordContact(int32_t worker_id, absl::Time now) {
  MOBILENET_CHECK(IsMember(worker_id));
  absl::MutexLock lock(&mu_);
  SeenLocked(worker_id, now);
}

bool ClusterLedger::RecordFinish(int32_t worker_id, bool training_complete, absl::Time now) {
  MOBILENET_CHECK(IsMember(worker_id));
  absl::MutexLock lock(&mu_);
  SeenLocked(worker_id, now);
  members_[worker_id].progress.finished = true;
  // Finished, not present: heard from again, it joins again.
  present_[worker_id] = false;
  RecordEventLocked(now, worker_id, ps::v1::MembershipEvent::FINISHED);
  if (training_complete) {
    training_complete_ = true;
    return true;
  }
  for (const Member& member : members_) {
    if (!member.progress.finished) return false;
  }
  return true;
}

void ClusterLedger::RecordEvaluation(const Evaluation& evaluation) {
  absl::MutexLock lock(&mu_);
  evaluation_ = evaluation;
}

absl::Status ClusterLedger::RecordClassNames(const std::vector<std::string>& class_names) {
  if (class_names.empty()) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  if (!class_names_.empty() && class_names_ != class_names) {
    return absl::FailedPreconditionError(absl::StrCat(
        "class names ", DescribeClassNames(class_names),
        " differ from those this server already keeps ", DescribeClassNames(class_names_),
        "; a run trains on one label mapping (start another --checkpoint_dir for "
        "other data)"));
  }
  class_names_ = class_names;
  return absl::OkStatus();
}

LedgerState ClusterLedger::Export() const {
  LedgerState state;
  absl::MutexLock lock(&mu_);
  for (const Member& member : members_) state.workers.push_back(member.progress);
  state.unattributed_pushes = unattributed_pushes_;
  state.unattributed_examples = unattributed_examples_;
  state.training_complete = training_complete_;
  state.evaluation = evaluation_;
  state.class_names = class_names_;
  state.sync_steps = sync_steps_;
  return state;
}

int64_t ClusterLedger::sync_steps() const {
  absl::MutexLock lock(&mu_);
  return sync_steps_;
}

void ClusterLedger::SetSyncSteps(int64_t steps) {
  absl::MutexLock lock(&mu_);
  sync_steps_ = steps;
}

std::vector<MemberLiveness> ClusterLedger::Liveness(absl::Time now) const {
  std::vector<MemberLiveness> members;
  absl::MutexLock lock(&mu_);
  NoteDeparturesLocked(now);
  for (int id = 0; id < num_workers_; ++id) {
    const Member& member = members_[id];
    MemberLiveness& liveness = members.emplace_back();
    liveness.worker_id = id;
    liveness.seconds_since_seen = SecondsSince(now, member.last_seen);
    liveness.finished = member.progress.finished;
    liveness.share_done = member.share_done;
  }
  return members;
}

absl::Status ClusterLedger::Restore(const LedgerState& state) {
  LedgerState mapped = state;
  if (static_cast<int>(mapped.workers.size()) != num_workers_) {
    // Another cluster size: its workers trained other data shards.
    for (const WorkerProgress& w : mapped.workers) {
      mapped.unattributed_pushes += w.pushes;
      mapped.unattributed_examples += w.examples;
    }
    mapped.workers.assign(num_workers_, WorkerProgress());
  }
  const absl::Status valid = CheckLedgerState(mapped, num_workers_);
  if (!valid.ok()) return valid;
  absl::MutexLock lock(&mu_);
  for (int i = 0; i < num_workers_; ++i) {
    members_[i] = Member();
    members_[i].progress = mapped.workers[i];
    present_[i] = false;
  }
  unattributed_pushes_ = mapped.unattributed_pushes;
  unattributed_examples_ = mapped.unattributed_examples;
  training_complete_ = mapped.training_complete;
  evaluation_ = mapped.evaluation;
  class_names_ = mapped.class_names;
  sync_steps_ = mapped.sync_steps;
  return absl::OkStatus();
}

int64_t ClusterLedger::total_pushes() const {
  absl::MutexLock lock(&mu_);
  int64_t total = unattributed_pushes_;
  for (const Member& member : members_) total += member.progress.pushes;
  return total;
}

int64_t ClusterLedger::total_examples() const {
  absl::MutexLock lock(&mu_);
  int64_t total = unattributed_examples_;
  for (const Member& member : members_) total += member.progress.examples;
  return total;
}

void ClusterLedger::FillStatus(absl::Time now, ps::v1::StatusResponse& status) const {
  absl::MutexLock lock(&mu_);
  NoteDeparturesLocked(now);
  for (const ps::v1::MembershipEvent& event : events_) *status.add_membership_events() = event;
  status.set_num_workers(num_workers_);
  for (int id = 0; id < num_workers_; ++id) {
    const Member& member = members_[id];
    ps::v1::WorkerStatus* worker = status.add_workers();
    worker->set_worker_id(id);
    worker->set_seconds_since_last_seen(SecondsSince(now, member.last_seen));
    worker->set_seconds_since_last_push(SecondsSince(now, member.last_push));
    worker->set_steps(member.progress.reported_steps);
    worker->set_images_per_sec(member.images_per_sec);
    worker->set_pushes(member.progress.pushes);
    worker->set_examples(member.progress.examples);
    worker->set_finished(member.progress.finished);
  }
  status.set_pushes_unattributed(unattributed_pushes_);
  status.set_examples_unattributed(unattributed_examples_);
  status.set_training_complete(training_complete_);
  if (evaluation_.has_value()) {
    status.set_eval_examples(evaluation_->examples);
    status.set_eval_accuracy(evaluation_->examples > 0 ? static_cast<double>(evaluation_->correct) /
                                                             evaluation_->examples
                                                       : 0.0);
    status.set_eval_loss(evaluation_->loss);
    status.set_eval_step(evaluation_->global_step);
    status.set_eval_unix_seconds(evaluation_->unix_seconds);
    if (evaluation_->average_examples > 0) {
      status.set_eval_average_examples(evaluation_->average_examples);
      status.set_eval_average_accuracy(static_cast<double>(evaluation_->average_correct) /
                                       evaluation_->average_examples);
      status.set_eval_average_loss(evaluation_->average_loss);
    }
  }
  for (const std::string& name : class_names_) status.add_class_names(name);
}

}  // namespace mobilenet
