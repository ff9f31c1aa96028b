// The training curves of a running cluster from its parameter servers' Status answers,
// polled over time (mobilenet-ctl report --ps_hosts): the same RunLog a run folder's logs
// give, so one renderer draws both. For clusters whose logs are not in one folder
// (Kubernetes, docker-compose).
#ifndef MOBILENET_REPORT_STATUS_HISTORY_H_
#define MOBILENET_REPORT_STATUS_HISTORY_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "mobilenet/ps/v1/parameter_server.pb.h"
#include "report/run_log.h"

namespace mobilenet {

// Not thread-safe.
class StatusHistory {
 public:
  // `cluster` names the cluster in the report's title (e.g. the --ps_hosts list).
  explicit StatusHistory(std::string cluster);

  // One poll at `now`: `statuses[i]` is server i's answer, nullopt when it did not answer.
  // Every poll must list the same servers. Times count from the first poll. Server i's
  // status line, its workers' rates, its staleness distribution; the chief's evaluations
  // (as the servers keep them: the latest one) when their step is new.
  void Add(absl::Time now, const std::vector<std::optional<ps::v1::StatusResponse>>& statuses);

  // The curves so far: servers by task, workers by id (from the first answering server),
  // evaluations of the chief placed at the time the chief reported them.
  const RunLog& run() const { return run_; }
  // Some server has said training is complete (or that it is finishing).
  bool training_ended() const { return training_ended_; }
  // Polls so far, and those where no server answered.
  int polls() const { return polls_; }
  int unanswered_polls() const { return unanswered_polls_; }

 private:
  RunLog run_;
  std::optional<absl::Time> start_;
  int64_t last_eval_step_ = -1;
  bool training_ended_ = false;
  int polls_ = 0;
  int unanswered_polls_ = 0;
};

}  // namespace mobilenet

#endif  // MOBILENET_REPORT_STATUS_HISTORY_H_
