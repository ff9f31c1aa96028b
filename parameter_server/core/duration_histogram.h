// Counts of durations in fixed buckets (e.g. how long applying a push took), with their sum:
// the shape of a Prometheus histogram, kept without any metrics library.
#ifndef MOBILENET_PARAMETER_SERVER_CORE_DURATION_HISTOGRAM_H_
#define MOBILENET_PARAMETER_SERVER_CORE_DURATION_HISTOGRAM_H_

#include <cstdint>
#include <vector>

#include "absl/time/time.h"

namespace mobilenet {

// Not thread-safe; the owner locks.
class DurationHistogram {
 public:
  // Buckets with these upper bounds in seconds (increasing), and one more for the rest.
  explicit DurationHistogram(std::vector<double> upper_bounds_seconds);

  // Records one sample (negative durations count as zero).
  void Add(absl::Duration duration);

  const std::vector<double>& upper_bounds() const { return upper_bounds_; }
  // Samples per bucket, not cumulative: counts()[i] are those in (bound[i-1], bound[i]];
  // the last element counts those above every bound. upper_bounds().size() + 1 elements.
  const std::vector<int64_t>& counts() const { return counts_; }
  int64_t count() const { return count_; }
  double sum_seconds() const { return sum_seconds_; }

 private:
  std::vector<double> upper_bounds_;
  std::vector<int64_t> counts_;
  int64_t count_ = 0;
  double sum_seconds_ = 0;
};

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CORE_DURATION_HISTOGRAM_H_
