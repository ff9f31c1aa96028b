// report.html: the training curves of a run folder's logs, or of a running cluster's
// polled Status (report/status_history.h), on one self-contained page (inline SVG, no
// script, nothing fetched).
#ifndef MOBILENET_REPORT_TRAINING_REPORT_H_
#define MOBILENET_REPORT_TRAINING_REPORT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "report/run_log.h"

namespace mobilenet {

// The HTML page: title, the run's summary (final accuracy, wall time, workers), and the
// charts, each saying which log lines (or, from_status, which Status fields) it comes
// from. Chart ids: accuracy-time, accuracy-step, loss-time, loss-step, images-per-second,
// staleness, staleness-distribution, and step-time (not from_status: the servers do not
// know the batch size).
std::string RenderTrainingReport(const RunLog& run);

// Writes `contents` to `path` through a temporary file beside it and a rename, so a reader
// sees the old file or the new one, never a part. The error names the file.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

// ReadRunLog(run_dir), RenderTrainingReport, WriteFileAtomically(out_path).
absl::Status WriteTrainingReport(const std::string& run_dir, const std::string& out_path);

}  // namespace mobilenet

#endif  // MOBILENET_REPORT_TRAINING_REPORT_H_
