#include "parameter_server/core/weight_backups.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "common/float_bits.h"

namespace mobilenet {

WeightBackups::WeightBackups(int num_workers, int64_t size) : size_(size) {
  MOBILENET_CHECK(num_workers >= 0 && size >= 0);
  workers_.resize(num_workers);
  for (Worker& worker : workers_) worker.versions.fill(-1);
}

void WeightBackups::Record(int worker, int64_t version, absl::Span<const float> weights) {
  MOBILENET_CHECK(static_cast<int64_t>(weights.size()) == size_);
  if (worker < 0 || worker >= num_workers()) return;
  Worker& w = workers_[worker];
  int slot = 0;
  for (int i = 0; i < kPullsPerWorker; ++i) {
    if (w.versions[i] == version) return;
    if (w.versions[i] < w.versions[slot]) slot = i;  // the oldest, or an empty one
  }
  if (w.versions[slot] > version) return;  // full of newer pulls
  if (w.weights.empty()) w.weights.resize(kPullsPerWorker * size_);
  std::copy(weights.begin(), weights.end(), w.weights.begin() + slot * size_);
  w.versions[slot] = version;
}

const float* WeightBackups::Find(int worker, int64_t version) const {
  if (worker < 0 || worker >= num_workers() || version < 0) return nullptr;
  const Worker& w = workers_[worker];
  for (int i = 0; i < kPullsPerWorker; ++i) {
    if (w.versions[i] == version) return w.weights.data() + i * size_;
  }
  return nullptr;
}

void WeightBackups::Clear() {
  for (Worker& worker : workers_) worker.versions.fill(-1);
}

int64_t WeightBackups::allocated_floats() const {
  int64_t floats = 0;
  for (const Worker& worker : workers_) floats += static_cast<int64_t>(worker.weights.size());
  return floats;
}

namespace {

// out[i] = g[i] + lambda_of(i, g[i]) * g[i]^2 * (now[i] - backup[i]) for every i; returns
// the largest |out[i]| (infinite or NaN when some element is). Finite floats' products stay
// far inside double's range: only the rounding to float can overflow.
template <typename LambdaOf>
float Compensate(absl::Span<const float> gradients, const float* now, const float* backup,
                 absl::Span<float> corrected, LambdaOf lambda_of) {
  MOBILENET_CHECK(corrected.size() == gradients.size());
  const float* __restrict g = gradients.data();
  const float* __restrict w = now;
  const float* __restrict b = backup;
  float* __restrict out = corrected.data();
  uint32_t bits = 0;
  const int64_t n = static_cast<int64_t>(gradients.size());
  for (int64_t i = 0; i < n; ++i) {
    const double gi = g[i];
    out[i] =
        static_cast<float>(gi + lambda_of(i, gi) * gi * gi * (static_cast<double>(w[i]) - b[i]));
    bits = std::max(bits, AbsBits(out[i]));
  }
  return FloatFromBits(bits);
}

}  // namespace

float CompensateDelay(float lambda, absl::Span<const float> gradients, const float* now,
                      const float* backup, absl::Span<float> corrected) {
  const double l = lambda;
  return Compensate(gradients, now, backup, corrected, [l](int64_t, double) { return l; });
}

float CompensateDelayAdaptive(float lambda, absl::Span<const float> gradients, const float* now,
                              const float* backup, const float* mean_square, float rho,
                              absl::Span<float> corrected) {
  const double l = lambda;
  const double r = rho;
  return Compensate(gradients, now, backup, corrected, [=](int64_t i, double gi) {
    const double next_ms = r * mean_square[i] + (1.0 - r) * gi * gi;
    return next_ms > 0.0 ? l / std::sqrt(next_ms) : 0.0;
  });
}

}  // namespace mobilenet
