#include "report/status_history.h"

#include <algorithm>
#include <map>
#include <utility>

namespace mobilenet {
namespace {

// StatusResponse.staleness_counts' most entries (kMaxStalenessCounts of
// parameter_server/core/parameter_server_core.h): a full list's last entry folds the tail.
constexpr int kStalenessEntries = 64;

}  // namespace

StatusHistory::StatusHistory(std::string cluster) {
  run_.run_dir = std::move(cluster);
  run_.from_status = true;
}

void StatusHistory::Add(absl::Time now,
                        const std::vector<std::optional<ps::v1::StatusResponse>>& statuses) {
  if (!start_.has_value()) start_ = now;
  ++polls_;
  const double seconds = absl::ToDoubleSeconds(now - *start_);
  if (run_.servers.size() < statuses.size()) {
    for (size_t i = run_.servers.size(); i < statuses.size(); ++i) {
      run_.servers.push_back(PsLog{static_cast<int>(i), {}, {}});
    }
  }
  const ps::v1::StatusResponse* first = nullptr;
  for (size_t i = 0; i < statuses.size(); ++i) {
    if (!statuses[i].has_value()) continue;
    const ps::v1::StatusResponse& s = *statuses[i];
    if (first == nullptr) first = &s;
    training_ended_ = training_ended_ || s.training_complete() || s.finishing();
    PsStatusPoint p;
    p.seconds = seconds;
    p.step = s.global_step();
    p.epoch = s.epoch();
    p.staleness_p50 = static_cast<int>(s.staleness_p50());
    p.staleness_p90 = static_cast<int>(s.staleness_p90());
    p.staleness_max = static_cast<int>(s.staleness_max());
    for (const ps::v1::WorkerStatus& w : s.workers()) {
      if (w.seconds_since_last_seen() >= 0)
        p.workers.push_back({w.worker_id(), w.images_per_sec()});
    }
    PsLog& log = run_.servers[i];
    log.statuses.push_back(std::move(p));
    log.staleness_counts.clear();
    for (int k = 0; k < s.staleness_counts_size(); ++k) {
      log.staleness_counts.push_back(
          {s.staleness_counts(k).staleness(), s.staleness_counts(k).pushes(),
           s.staleness_counts_size() == kStalenessEntries && k + 1 == s.staleness_counts_size()});
    }
  }
  if (first == nullptr) {
    ++unanswered_polls_;
    return;
  }
  // Workers as the first answering server saw them: their latest rate and step.
  for (const ps::v1::WorkerStatus& w : first->workers()) {
    if (w.seconds_since_last_seen() < 0 || w.steps() <= 0) continue;
    auto it = std::find_if(run_.workers.begin(), run_.workers.end(),
                           [&w](const WorkerLog& log) { return log.task == w.worker_id(); });
    if (it == run_.workers.end()) {
      run_.workers.push_back(WorkerLog{});
      run_.workers.back().task = w.worker_id();
      std::sort(run_.workers.begin(), run_.workers.end(),
                [](const WorkerLog& a, const WorkerLog& b) { return a.task < b.task; });
      it = std::find_if(run_.workers.begin(), run_.workers.end(),
                        [&w](const WorkerLog& log) { return log.task == w.worker_id(); });
    }
    ProgressPoint p;
    p.epoch = first->epoch();
    p.step = w.steps();
    p.global_step = first->global_step();
    p.images_per_sec = w.images_per_sec();
    p.loss = -1;  // not reported to the servers
    p.elapsed_seconds = seconds;
    if (!w.finished() || it->progress.empty() || it->progress.back().step != p.step) {
      it->progress.push_back(p);
    }
  }
  // The chief's latest evaluation, once per evaluated step, at the time it was reported.
  if (first->eval_examples() > 0 && first->eval_step() != last_eval_step_) {
    last_eval_step_ = first->eval_step();
    auto chief = std::find_if(run_.workers.begin(), run_.workers.end(),
                              [](const WorkerLog& log) { return log.task == 0; });
    if (chief == run_.workers.end()) {
      run_.workers.insert(run_.workers.begin(), WorkerLog{});
      chief = run_.workers.begin();
    }
    EvaluationPoint e;
    e.epoch = first->epoch();
    e.global_step = first->eval_step();
    e.accuracy_percent = 100 * first->eval_accuracy();
    e.loss = first->eval_loss();
    if (first->eval_average_examples() > 0) {
      e.average_accuracy_percent = 100 * first->eval_average_accuracy();
      e.average_loss = first->eval_average_loss();
    }
    e.elapsed_seconds =
        first->eval_unix_seconds() > 0
            ? first->eval_unix_seconds() - absl::ToDoubleSeconds(*start_ - absl::UnixEpoch())
            : seconds;
    chief->evaluations.push_back(e);
  }
}

}  // namespace mobilenet
