// Timing helpers shared by the benchmark binaries: medians of repeated measurements.
#ifndef MOBILENET_COMMON_BENCHMARK_TIMING_H_
#define MOBILENET_COMMON_BENCHMARK_TIMING_H_

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

namespace mobilenet {

// The median of `values` (non-empty): the middle one, or the mean of the two middle ones.
inline double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// User plus system CPU seconds this process has used so far (all threads).
inline double ProcessCpuSeconds() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         1e-6 * (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

// Seconds one call of `body` takes.
template <typename Body>
double SecondsOf(Body&& body) {
  const auto start = std::chrono::steady_clock::now();
  body();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Runs `body` `warmup` times untimed, then `iterations` (>= 1) times; the median seconds.
template <typename Body>
double MedianSeconds(int warmup, int iterations, Body body) {
  for (int i = 0; i < warmup; ++i) body();
  std::vector<double> seconds;
  for (int i = 0; i < iterations; ++i) seconds.push_back(SecondsOf(body));
  return Median(std::move(seconds));
}

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_BENCHMARK_TIMING_H_
