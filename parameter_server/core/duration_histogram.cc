#include "parameter_server/core/duration_histogram.h"

#include <algorithm>
#include <utility>

#include "common/check.h"

namespace mobilenet {

DurationHistogram::DurationHistogram(std::vector<double> upper_bounds_seconds)
    : upper_bounds_(std::move(upper_bounds_seconds)), counts_(upper_bounds_.size() + 1, 0) {
  MOBILENET_CHECK(std::is_sorted(upper_bounds_.begin(), upper_bounds_.end()));
}

void DurationHistogram::Add(absl::Duration duration) {
  const double seconds = std::max(0.0, absl::ToDoubleSeconds(duration));
  const size_t bucket =
      std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), seconds) - upper_bounds_.begin();
  ++counts_[bucket];
  ++count_;
  sum_seconds_ += seconds;
}

}  // namespace mobilenet
