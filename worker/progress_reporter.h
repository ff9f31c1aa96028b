// Training progress a person can follow: one line updated in place on a terminal, plain
// lines at a fixed interval otherwise (logs, pipes).
#ifndef MOBILENET_WORKER_PROGRESS_REPORTER_H_
#define MOBILENET_WORKER_PROGRESS_REPORTER_H_

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/time/time.h"

namespace mobilenet {

struct ProgressSnapshot {
  double epoch = 0;           // fractional epochs completed, e.g. 2.37
  int total_epochs = 0;
  int64_t step = 0;           // this worker's steps
  int64_t global_step = 0;    // the parameter store's version
  double images_per_sec = 0;  // this worker, over the recent window
  double loss = 0;            // recent average
  double accuracy = 0;        // recent training-batch accuracy, in [0, 1]
  double learning_rate = 0;
  double eta_seconds = -1;    // < 0: unknown
  double elapsed_seconds = -1;  // since training started; shown when >= 0
  // Distributed extras; shown when >= 0.
  double staleness = -1;
  double push_latency_ms = -1;
};

// Not thread-safe.
class ProgressReporter {
 public:
  // Writes to `out` (not owned). `interactive`: update one line in place with '\r'
  // (use IsTerminal). Otherwise a plain line at most every `plain_interval`.
  ProgressReporter(FILE* out, bool interactive, absl::Duration plain_interval);

  static bool IsTerminal(FILE* out);

  // Shows a snapshot (rate-limited: at most ~5 redraws a second on a terminal).
  void Update(const ProgressSnapshot& snapshot);
  // A permanent line (e.g. an evaluation result); clears the updating line first.
  void Line(const std::string& text);
  // Ends the updating line, if one is shown.
  void Finish();

  // The text of one snapshot, without line ending.
  static std::string Format(const ProgressSnapshot& s);

 private:
  FILE* out_;
  bool interactive_;
  absl::Duration plain_interval_;
  absl::Time last_print_ = absl::InfinitePast();
  bool line_open_ = false;
  size_t last_width_ = 0;
};

// "1h02m", "4m05s", "12s".
std::string FormatDuration(double seconds);

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_PROGRESS_REPORTER_H_
