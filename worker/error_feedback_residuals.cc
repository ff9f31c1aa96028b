#include "worker/error_feedback_residuals.h"

#include <utility>

#include "common/check.h"

namespace mobilenet {

ErrorFeedbackResiduals::ErrorFeedbackResiduals(std::vector<int64_t> counts) {
  for (int64_t count : counts) {
    Server server;
    server.count = count;
    server.residual.assign(count, 0.0f);
    servers_.push_back(std::move(server));
  }
}

ErrorFeedbackResiduals::Pending ErrorFeedbackResiduals::Encode(int server, uint64_t request_id,
                                                               WireDtype dtype,
                                                               absl::Span<const float> gradients,
                                                               absl::Span<const Segment> segments,
                                                               char* out) {
  Pending pending;
  pending.server = server;
  pending.request_id = request_id;
  int64_t count;
  {
    absl::MutexLock lock(&mu_);
    MOBILENET_CHECK(server >= 0 && server < static_cast<int>(servers_.size()));
    Server& state = servers_[server];
    count = state.count;
    pending.taken = std::move(state.residual);
    pending.left = std::move(state.spare);
    state.residual.clear();
    state.spare.clear();
  }
  if (static_cast<int64_t>(pending.taken.size()) != count) pending.taken.assign(count, 0.0f);
  pending.left.resize(count);
  const size_t width = BytesPerValue(dtype);
  for (const Segment& segment : segments) {
    MOBILENET_CHECK(segment.shard_offset + segment.size <= count);
    EncodeWithErrorFeedback(
        dtype, gradients.subspan(segment.flat_offset, segment.size),
        absl::MakeConstSpan(pending.taken).subspan(segment.shard_offset, segment.size),
        absl::MakeSpan(pending.left).subspan(segment.shard_offset, segment.size),
        out + segment.shard_offset * width);
  }
  return pending;
}

void ErrorFeedbackResiduals::Deposit(Server& server, std::vector<float> values) {
  if (server.residual.empty()) {
    server.residual = std::move(values);
    return;
  }
  for (int64_t i = 0; i < server.count; ++i) server.residual[i] += values[i];
  if (server.spare.empty()) server.spare = std::move(values);
}

void ErrorFeedbackResiduals::Settle(Pending pending, PushOutcome outcome) {
  absl::MutexLock lock(&mu_);
  Server& server = servers_[pending.server];
  bool keep_left = outcome == PushOutcome::kApplied;
  if (outcome == PushOutcome::kDuplicate) {
    keep_left = !(server.any_applied && server.last_applied == pending.request_id);
  }
  if (keep_left) {
    server.last_applied = pending.request_id;
    server.any_applied = true;
    Deposit(server, std::move(pending.left));
    if (server.spare.empty()) server.spare = std::move(pending.taken);
  } else {
    Deposit(server, std::move(pending.taken));
    if (server.spare.empty()) server.spare = std::move(pending.left);
  }
}

std::vector<float> ErrorFeedbackResiduals::Residual(int server) const {
  absl::MutexLock lock(&mu_);
  const Server& state = servers_[server];
  if (state.residual.empty()) return std::vector<float>(state.count, 0.0f);
  return state.residual;
}

}  // namespace mobilenet
