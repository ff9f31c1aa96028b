// Exact counts of the staleness of applied pushes (how many versions the shard advanced
// between a worker's pull and its push), with nearest-rank percentiles.
#ifndef MOBILENET_PARAMETER_SERVER_CORE_STALENESS_HISTOGRAM_H_
#define MOBILENET_PARAMETER_SERVER_CORE_STALENESS_HISTOGRAM_H_

#include <cstdint>
#include <map>

namespace mobilenet {

// Not thread-safe; the owner locks.
class StalenessHistogram {
 public:
  // Records one sample; staleness >= 0.
  void Add(int64_t staleness);

  int64_t count() const { return count_; }
  // Largest sample, 0 when empty.
  int64_t max() const;
  // Mean of the samples, 0 when empty.
  double mean() const;
  // Nearest rank: the smallest recorded value s such that at least ceil(q * count) samples
  // are <= s (the minimum for q = 0). 0 when empty. q in [0, 1].
  int64_t Percentile(double q) const;
  // Samples per recorded staleness, in increasing staleness; and their sum.
  const std::map<int64_t, int64_t>& counts() const { return counts_; }
  double sum() const { return sum_; }

 private:
  std::map<int64_t, int64_t> counts_;  // staleness -> samples; few distinct values
  int64_t count_ = 0;
  double sum_ = 0;
};

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CORE_STALENESS_HISTOGRAM_H_
