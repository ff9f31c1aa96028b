#include "parameter_server/core/staleness_histogram.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"

namespace mobilenet {

void StalenessHistogram::Add(int64_t staleness) {
  MOBILENET_CHECK(staleness >= 0);
  ++counts_[staleness];
  ++count_;
  sum_ += static_cast<double>(staleness);
}

int64_t StalenessHistogram::max() const { return counts_.empty() ? 0 : counts_.rbegin()->first; }

double StalenessHistogram::mean() const { return count_ == 0 ? 0.0 : sum_ / count_; }

int64_t StalenessHistogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  q = std::min(1.0, std::max(0.0, q));
  const int64_t rank = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(q * count_)));
  int64_t seen = 0;
  for (const auto& [staleness, samples] : counts_) {
    seen += samples;
    if (seen >= rank) return staleness;
  }
  return counts_.rbegin()->first;
}

}  // namespace mobilenet
