// The training curves of a run folder (deploy/run_local.sh's runs/<time>/): what the chief,
// the workers and the parameter servers printed, parsed back into series.
#ifndef MOBILENET_REPORT_RUN_LOG_H_
#define MOBILENET_REPORT_RUN_LOG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mobilenet {

// One evaluation line of the chief: "epoch 2.00  global step 1900  test accuracy 81.54%
// test loss 0.5362  (1m23s elapsed)", and, when the weight average was evaluated too,
// "  weight average: test accuracy 82.10%  test loss 0.5101" after it.
struct EvaluationPoint {
  double epoch = 0;
  int64_t global_step = 0;
  double accuracy_percent = 0;
  double loss = 0;
  double elapsed_seconds = 0;  // since the chief started training (whole seconds)
  double average_accuracy_percent = -1;  // of the weight average; < 0: not shown
  double average_loss = -1;              // of the weight average; < 0: not shown
};

// One progress line of a worker ("epoch 0.26/12  step 122  773.0 img/s  loss 2.8507 ...").
struct ProgressPoint {
  double epoch = 0;
  int64_t step = 0;
  int64_t global_step = 0;  // the step itself when the line shows no "global"
  double images_per_sec = 0;
  double loss = 0;
  double accuracy_percent = 0;
  double staleness = -1;        // < 0: not shown
  double push_latency_ms = -1;  // < 0: not shown
  double elapsed_seconds = -1;  // since the worker started training; < 0: not shown
};

// "Test accuracy: 91.21% (9121/10000), test loss 0.3126 at global step 11250".
struct FinalEvaluation {
  double accuracy_percent = 0;
  int64_t correct = 0;
  int64_t total = 0;
  double loss = 0;
  int64_t global_step = 0;
};

struct WorkerLog {
  int task = 0;
  int batch_size = 0;  // 0: the header line is missing
  std::vector<ProgressPoint> progress;
  std::vector<EvaluationPoint> evaluations;  // the chief's only
  std::optional<FinalEvaluation> final_evaluation;
  // "Weight average: test accuracy 91.60% (9160/10000), test loss 0.3001" (global_step:
  // the final evaluation's, as the line follows it).
  std::optional<FinalEvaluation> final_average_evaluation;
  double trained_seconds = -1;  // "Worker 0 trained ... in 8m04s": < 0 when missing
  double images_per_sec = -1;   // of that line
};

// A parameter server's periodic status line ("[18:25:01 ps 0/2] step 11190 ... staleness
// p50/p90/max 3/3/42  workers: 0(984 img/s, seen 0s ago), 1 finished (792 img/s, ...)").
struct PsStatusPoint {
  double seconds = 0;  // since the first timestamped line of the log
  int64_t step = 0;
  double epoch = 0;
  int staleness_p50 = 0;
  int staleness_p90 = 0;
  int staleness_max = 0;
  struct WorkerRate {
    int task = 0;
    double images_per_sec = 0;
  };
  std::vector<WorkerRate> workers;
};

// Applied pushes of one staleness; `or_more`: also every staler push (the server's folded
// last entry, "63+:5").
struct StalenessCount {
  int64_t staleness = 0;
  int64_t pushes = 0;
  bool or_more = false;
};

struct PsLog {
  int task = 0;
  std::vector<PsStatusPoint> statuses;
  // The last "staleness of the N pushes applied by this run: 0:200 1:1000 ..." line
  // (logged when training ends); empty when there is none.
  std::vector<StalenessCount> staleness_counts;
};

struct RunLog {
  std::string run_dir;  // with from_status: the cluster's name instead
  // The curves come from the servers' polled Status answers (report/status_history.h),
  // not from logs: times count from the first poll, a worker's progress is what it last
  // reported to the servers, and nothing says when training began.
  bool from_status = false;
  std::vector<WorkerLog> workers;  // by task
  std::vector<PsLog> servers;      // by task
  // The chief's (worker 0's) log, or nullptr when it is missing.
  const WorkerLog* chief() const;
};

// Parses the text of worker-<task>.log. Lines are split at '\n' and '\r' (progress updated
// in place); lines that match nothing, or only in part, are skipped. Never fails.
WorkerLog ParseWorkerLog(int task, absl::string_view text);
// Parses the text of ps-<task>.log, as tolerantly.
PsLog ParsePsLog(int task, absl::string_view text);

// Reads every worker-N.log and ps-N.log of `run_dir`. NOT_FOUND naming the folder when it
// cannot be read or holds no such log; a partial or garbled log (a run killed midway)
// gives what could be parsed.
absl::StatusOr<RunLog> ReadRunLog(const std::string& run_dir);

// "1h02m" / "4m05s" / "12s" (worker/progress_reporter.cc FormatDuration) in seconds;
// nullopt when it is none of these.
std::optional<double> ParseShortDuration(absl::string_view text);

}  // namespace mobilenet

#endif  // MOBILENET_REPORT_RUN_LOG_H_
