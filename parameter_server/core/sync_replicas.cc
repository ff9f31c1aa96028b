#include "parameter_server/core/sync_replicas.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/check.h"

namespace mobilenet {
namespace {

bool Alive(const SyncReplicasConfig& config, const MemberLiveness& member) {
  return IsAlive(member, config.worker_liveness);
}

}  // namespace

absl::StatusOr<int> ParseReplicasToAggregate(absl::string_view text, int num_workers) {
  if (text.empty()) return num_workers;
  if (text == "all") return 0;
  int n = 0;
  if (!absl::SimpleAtoi(text, &n) || n < 1 || n > num_workers) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--replicas_to_aggregate=%s: expected a number in [1, %d] (the workers), or all", text,
        num_workers));
  }
  return n;
}

int SyncGradientsNeeded(const SyncReplicasConfig& config,
                        const std::vector<MemberLiveness>& members,
                        absl::Span<const int32_t> counted) {
  bool end_of_run = false;
  for (const MemberLiveness& member : members) end_of_run |= member.finished || member.share_done;
  int training = 0, live = 0;
  for (const MemberLiveness& member : members) {
    const bool is_counted =
        std::find(counted.begin(), counted.end(), member.worker_id) != counted.end();
    if (!is_counted && (member.finished || member.share_done)) continue;
    const bool alive = is_counted || Alive(config, member);
    training += alive || !end_of_run;
    live += alive;
  }
  if (config.replicas_to_aggregate == 0) return std::max(1, live);
  return std::max(1, std::min(config.replicas_to_aggregate, training));
}

std::string SyncWaitingReason(const SyncReplicasConfig& config, int64_t step, int pending,
                              int needed, const std::vector<MemberLiveness>& members) {
  int live = 0;
  std::vector<std::string> missing;
  for (const MemberLiveness& member : members) {
    if (member.finished || member.share_done) continue;
    if (Alive(config, member)) {
      ++live;
    } else if (member.seconds_since_seen < 0) {
      missing.push_back(absl::StrFormat("worker %d not heard from yet", member.worker_id));
    } else {
      missing.push_back(absl::StrFormat("worker %d not heard from for %.0f s", member.worker_id,
                                        member.seconds_since_seen));
    }
  }
  if (live >= needed || missing.empty()) return "";
  return absl::StrFormat("step %d waits: %d of %d gradients, %d live worker%s (%s)", step, pending,
                         needed, live, live == 1 ? "" : "s", absl::StrJoin(missing, ", "));
}

SyncGradients::SyncGradients(int num_workers, int64_t parameter_count, int64_t state_count)
    : parameter_count_(parameter_count),
      state_count_(state_count),
      held_(num_workers),
      gradients_(num_workers),
      stats_(num_workers) {}

void SyncGradients::Store(int32_t worker, int64_t step, uint64_t request_id, int64_t reported_steps,
                          double images_per_sec, const ShardUpdate& update) {
  MOBILENET_CHECK(worker >= 0 && worker < static_cast<int>(held_.size()));
  MOBILENET_CHECK(static_cast<int64_t>(update.gradients().size()) == parameter_count_);
  std::vector<float>& gradients = gradients_[worker];
  gradients.assign(update.gradients().begin(), update.gradients().end());
  Held& held = held_[worker];
  held.has_stats = !update.batch_stats().empty();
  if (held.has_stats) {
    MOBILENET_CHECK(static_cast<int64_t>(update.batch_stats().size()) == state_count_);
    stats_[worker].assign(update.batch_stats().begin(), update.batch_stats().end());
  }
  held.step = step;
  held.request_id = request_id;
  held.examples = update.example_count();
  held.reported_steps = reported_steps;
  held.images_per_sec = images_per_sec;
}

SyncGradients::Average SyncGradients::AverageOf(int64_t step, absl::Span<const int32_t> workers,
                                                std::vector<float>& gradients,
                                                std::vector<float>& stats) const {
  Average average;
  gradients.assign(parameter_count_, 0.0f);
  stats.assign(state_count_, 0.0f);
  for (const int32_t worker : workers) {
    if (worker < 0 || worker >= static_cast<int>(held_.size())) continue;
    const Held& held = held_[worker];
    if (held.step != step) continue;
    ++average.gradients;
    const std::vector<float>& g = gradients_[worker];
    for (int64_t i = 0; i < parameter_count_; ++i) gradients[i] += g[i];
    if (held.has_stats) {
      ++average.stats;
      const std::vector<float>& s = stats_[worker];
      for (int64_t i = 0; i < state_count_; ++i) stats[i] += s[i];
    }
  }
  if (average.gradients > 0) {
    const float scale = 1.0f / static_cast<float>(average.gradients);
    for (float& g : gradients) g *= scale;
  }
  if (average.stats > 0) {
    const float scale = 1.0f / static_cast<float>(average.stats);
    for (float& s : stats) s *= scale;
  } else {
    stats.clear();
  }
  return average;
}

int64_t SyncGradients::allocated_floats() const {
  int64_t floats = 0;
  for (size_t i = 0; i < held_.size(); ++i) {
    floats += static_cast<int64_t>(gradients_[i].capacity() + stats_[i].capacity());
  }
  return floats;
}

}  // namespace mobilenet
