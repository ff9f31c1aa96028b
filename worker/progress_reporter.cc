#include "worker/progress_reporter.h"

#include <unistd.h>

#include <cmath>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace mobilenet {

std::string FormatDuration(double seconds) {
  if (!(seconds >= 0) || std::isinf(seconds)) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

ProgressReporter::ProgressReporter(FILE* out, bool interactive, absl::Duration plain_interval)
    : out_(out), interactive_(interactive), plain_interval_(plain_interval) {}

bool ProgressReporter::IsTerminal(FILE* out) { return isatty(fileno(out)) == 1; }

std::string ProgressReporter::Format(const ProgressSnapshot& s) {
  std::string text = absl::StrFormat(
      "epoch %.2f/%d  step %d  %.1f img/s  loss %.4f  acc %.1f%%  lr %.3g", s.epoch,
      s.total_epochs, s.step, s.images_per_sec, s.loss, 100 * s.accuracy, s.learning_rate);
  if (s.global_step != s.step) absl::StrAppendFormat(&text, "  global %d", s.global_step);
  if (s.staleness >= 0) absl::StrAppendFormat(&text, "  stale %.1f", s.staleness);
  if (s.push_latency_ms >= 0) absl::StrAppendFormat(&text, "  push %.1fms", s.push_latency_ms);
  if (s.eta_seconds >= 0) absl::StrAppendFormat(&text, "  ETA %s", FormatDuration(s.eta_seconds));
  if (s.elapsed_seconds >= 0) {
    absl::StrAppendFormat(&text, "  elapsed %s", FormatDuration(s.elapsed_seconds));
  }
  return text;
}

void ProgressReporter::Update(const ProgressSnapshot& snapshot) {
  const absl::Time now = absl::Now();
  const absl::Duration interval = interactive_ ? absl::Milliseconds(200) : plain_interval_;
  if (now - last_print_ < interval) return;
  last_print_ = now;
  const std::string text = Format(snapshot);
  if (interactive_) {
    // Pad with spaces to erase the tail of a longer previous line.
    const size_t pad = last_width_ > text.size() ? last_width_ - text.size() : 0;
    absl::FPrintF(out_, "\r%s%s", text, std::string(pad, ' '));
    last_width_ = text.size();
    line_open_ = true;
  } else {
    absl::FPrintF(out_, "%s\n", text);
  }
  fflush(out_);
}

void ProgressReporter::Finish() {
  if (line_open_) {
    absl::FPrintF(out_, "\n");
    line_open_ = false;
    last_width_ = 0;
  }
  fflush(out_);
}

void ProgressReporter::Line(const std::string& text) {
  Finish();
  absl::FPrintF(out_, "%s\n", text);
  fflush(out_);
}

}  // namespace mobilenet
