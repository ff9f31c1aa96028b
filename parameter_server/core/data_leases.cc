#include "parameter_server/core/data_leases.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mobilenet {
namespace {

bool SamePlan(const ps::v1::DataPlan& a, const ps::v1::DataPlan& b) {
  return a.num_examples() == b.num_examples() && a.blocks_per_epoch() == b.blocks_per_epoch() &&
         a.epochs() == b.epochs() && a.seed() == b.seed();
}

int64_t BlocksOf(const ps::v1::DataPlan& plan) {
  return static_cast<int64_t>(plan.epochs()) * plan.blocks_per_epoch();
}

}  // namespace

std::string DescribeDataPlan(const ps::v1::DataPlan& plan) {
  return absl::StrFormat("%d epochs of %d blocks of %d examples (seed %d)", plan.epochs(),
                         plan.blocks_per_epoch(), plan.num_examples(), plan.seed());
}

absl::Status CheckDataPlan(const ps::v1::DataPlan& plan) {
  if (plan.num_examples() < 1 || plan.num_examples() > kMaxDataExamples ||
      plan.blocks_per_epoch() < 1 || plan.blocks_per_epoch() > plan.num_examples() ||
      plan.epochs() < 1 || BlocksOf(plan) > kMaxDataBlocks) {
    return absl::InvalidArgumentError(
        absl::StrFormat("data plan of %s is out of range (expected num_examples in [1, 2^31 - 1], "
                        "blocks_per_epoch in [1, num_examples], epochs >= 1, at most %d blocks)",
                        DescribeDataPlan(plan), kMaxDataBlocks));
  }
  return absl::OkStatus();
}

absl::Status CheckDataLeaseState(const DataLeaseState& state) {
  const ps::v1::DataPlan& plan = state.plan;
  if (absl::Status valid = CheckDataPlan(plan); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("data leases: ", valid.message()));
  }
  if (state.next_block < 0 || state.next_block > BlocksOf(plan)) {
    return absl::InvalidArgumentError(absl::StrFormat("data leases: next block %d outside [0, %d]",
                                                      state.next_block, BlocksOf(plan)));
  }
  for (size_t i = 0; i < state.open_blocks.size(); ++i) {
    const int64_t g = state.open_blocks[i];
    if (g < 0 || g >= state.next_block || (i > 0 && g <= state.open_blocks[i - 1])) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "data leases: open block %d is not in [0, %d) or not ascending without duplicates", g,
          state.next_block));
    }
  }
  if (state.blocks_reassigned < 0 || state.late_completions < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "data leases: %d blocks reassigned, %d late completions; expected counts >= 0",
        state.blocks_reassigned, state.late_completions));
  }
  return absl::OkStatus();
}

absl::Status DataLeases::Lease(int32_t worker_id, const ps::v1::DataPlan& plan,
                               absl::Span<const ps::v1::DataBlock> completed,
                               absl::Span<const ps::v1::DataBlock> held, absl::Time now,
                               ps::v1::LeaseResponse& response) {
  response.Clear();
  if (plan_.has_value() && !SamePlan(*plan_, plan)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "LeaseData: worker %d's data plan (%s) is not this run's (%s); start every worker with "
        "the same data flags",
        worker_id, DescribeDataPlan(plan), DescribeDataPlan(*plan_)));
  }
  for (const auto& [list, blocks] :
       {std::make_pair("completed", completed), std::make_pair("held", held)}) {
    for (const ps::v1::DataBlock& block : blocks) {
      if (block.epoch() < 0 || block.epoch() >= plan.epochs() || block.block() < 0 ||
          block.block() >= plan.blocks_per_epoch()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("LeaseData: %s: block %d of epoch %d lies outside the data plan (%s)",
                            list, block.block(), block.epoch(), DescribeDataPlan(plan)));
      }
    }
  }
  if (!plan_.has_value()) plan_ = plan;

  for (const ps::v1::DataBlock& block : completed) {
    auto it = leased_.find(GlobalIndex(block));
    if (it != leased_.end() && it->second.worker_id == worker_id) {
      leased_.erase(it);
    } else {
      ++late_completions_;  // taken back (and maybe leased to another) meanwhile
    }
  }
  absl::flat_hash_set<int64_t> still_held;
  for (const ps::v1::DataBlock& block : held) still_held.insert(GlobalIndex(block));
  std::vector<int64_t> lost;
  int kept = 0;
  for (const auto& [g, lease] : leased_) {
    if (lease.worker_id != worker_id) continue;
    if (still_held.contains(g)) {
      ++kept;
    } else {
      lost.push_back(g);  // ascending: the map's order
    }
  }
  std::optional<int64_t> grant;
  blocks_reassigned_ += static_cast<int64_t>(lost.size());
  for (const int64_t g : lost) {
    if (!grant.has_value() && kept < kMaxHeldBlocks) {
      grant = g;  // the worker that lost it trains it again first
      leased_[g].since = now;
    } else {
      leased_.erase(g);
      returned_.insert(g);
    }
  }
  if (!grant.has_value()) {
    if (kept >= kMaxHeldBlocks) {
      response.set_outcome(ps::v1::LEASE_WAIT);
    } else if (!returned_.empty()) {
      grant = *returned_.begin();
      returned_.erase(returned_.begin());
    } else if (next_block_ < blocks_total()) {
      grant = next_block_++;
    } else {
      response.set_outcome(leased_.empty() ? ps::v1::LEASE_DONE : ps::v1::LEASE_WAIT);
    }
    if (grant.has_value()) leased_[*grant] = Holder{worker_id, now};
  }
  if (grant.has_value()) {
    response.set_outcome(ps::v1::LEASE_GRANTED);
    *response.mutable_block() = BlockOf(*grant);
  }
  response.set_blocks_completed(blocks_completed());
  response.set_blocks_total(blocks_total());
  return absl::OkStatus();
}

std::vector<ReturnedBlocks> DataLeases::Reclaim(absl::Span<const MemberLiveness> members,
                                                absl::Duration liveness) {
  absl::flat_hash_set<int32_t> gone;
  for (const MemberLiveness& m : members) {
    if (!IsAlive(m, liveness) || m.finished) gone.insert(m.worker_id);
  }
  std::map<int32_t, int64_t> returned_by;
  for (auto it = leased_.begin(); it != leased_.end();) {
    if (!gone.contains(it->second.worker_id)) {
      ++it;
      continue;
    }
    ++returned_by[it->second.worker_id];
    returned_.insert(it->first);
    it = leased_.erase(it);
  }
  std::vector<ReturnedBlocks> result;
  for (const auto& [worker, blocks] : returned_by) {
    blocks_reassigned_ += blocks;
    result.push_back(ReturnedBlocks{worker, blocks});
  }
  return result;
}

int DataLeases::HeldBy(int32_t worker_id) const {
  int held = 0;
  for (const auto& [g, lease] : leased_) held += lease.worker_id == worker_id;
  return held;
}

int64_t DataLeases::blocks_total() const { return plan_.has_value() ? BlocksOf(*plan_) : 0; }

int64_t DataLeases::blocks_completed() const {
  return next_block_ - static_cast<int64_t>(leased_.size() + returned_.size());
}

void DataLeases::FillStatus(absl::Time now, ps::v1::DataLeaseStatus& status) const {
  status.Clear();
  if (!plan_.has_value()) return;
  *status.mutable_data() = *plan_;
  status.set_blocks_completed(blocks_completed());
  status.set_blocks_total(blocks_total());
  int64_t lowest_open = next_block_;
  if (!leased_.empty()) lowest_open = std::min(lowest_open, leased_.begin()->first);
  if (!returned_.empty()) lowest_open = std::min(lowest_open, *returned_.begin());
  status.set_epoch(static_cast<int32_t>(lowest_open / plan_->blocks_per_epoch()));
  for (const auto& [g, lease] : leased_) {
    ps::v1::DataLeaseStatus::Held* held = status.add_held();
    held->set_worker_id(lease.worker_id);
    *held->mutable_block() = BlockOf(g);
    held->set_seconds_held(absl::ToDoubleSeconds(now - lease.since));
  }
  status.set_blocks_returned(static_cast<int64_t>(returned_.size()));
  status.set_blocks_reassigned(blocks_reassigned_);
  status.set_late_completions(late_completions_);
}

std::optional<DataLeaseState> DataLeases::Export() const {
  if (!plan_.has_value()) return std::nullopt;
  DataLeaseState state;
  state.plan = *plan_;
  state.next_block = next_block_;
  for (const auto& [g, lease] : leased_) state.open_blocks.push_back(g);
  state.open_blocks.insert(state.open_blocks.end(), returned_.begin(), returned_.end());
  std::sort(state.open_blocks.begin(), state.open_blocks.end());
  state.blocks_reassigned = blocks_reassigned_;
  state.late_completions = late_completions_;
  return state;
}

absl::Status DataLeases::Restore(const std::optional<DataLeaseState>& state) {
  if (state.has_value()) {
    const absl::Status valid = CheckDataLeaseState(*state);
    if (!valid.ok()) return valid;
  }
  leased_.clear();
  returned_.clear();
  if (!state.has_value()) {
    plan_.reset();
    next_block_ = 0;
    blocks_reassigned_ = 0;
    late_completions_ = 0;
    return absl::OkStatus();
  }
  plan_ = state->plan;
  next_block_ = state->next_block;
  returned_.insert(state->open_blocks.begin(), state->open_blocks.end());
  blocks_reassigned_ = state->blocks_reassigned;
  late_completions_ = state->late_completions;
  return absl::OkStatus();
}

int64_t DataLeases::GlobalIndex(const ps::v1::DataBlock& block) const {
  return static_cast<int64_t>(block.epoch()) * plan_->blocks_per_epoch() + block.block();
}

ps::v1::DataBlock DataLeases::BlockOf(int64_t global) const {
  ps::v1::DataBlock block;
  block.set_epoch(static_cast<int32_t>(global / plan_->blocks_per_epoch()));
  block.set_block(static_cast<int32_t>(global % plan_->blocks_per_epoch()));
  return block;
}

}  // namespace mobilenet
