// Delay-compensated ASGD (Zheng et al., "Asynchronous Stochastic Gradient Descent with
// Delay Compensation", ICML 2017) on a parameter-server shard: the weights each worker
// last pulled for training (the paper's backup w_bak), and the correction of a gradient
// computed from them towards the shard's current weights:
//
//   g~ = g + lambda * g (.) g (.) (w_now - w_bak)
//
// the first-order Taylor expansion of the gradient around w_bak, with the Hessian
// approximated by lambda times the diagonal of the gradient's outer product.
//
// A worker that overlaps communication (its default) computes each gradient from the
// weights of its second-latest training pull (it pulls the next weights while it
// computes), so the last kPullsPerWorker = 2 pulls of each worker are kept, each tagged
// with the version it was read at; a push is matched by its computed_from_version.
// Evaluation and export pulls, a tool's pulls and pulls of the weight average are not
// training pulls (PullRequest.training) and are never recorded, so they cannot evict a
// backup a push still needs.
//
// Memory: kPullsPerWorker * size floats per worker, allocated on the worker's first
// training pull; at most num_workers of them. Backups are not checkpointed: after a
// restart (or a restore) a worker's first pushes find none and are applied as they came.
//
// Knows no locks: the shard decides who may touch it (see parameter_shard.h).
#ifndef MOBILENET_PARAMETER_SERVER_CORE_WEIGHT_BACKUPS_H_
#define MOBILENET_PARAMETER_SERVER_CORE_WEIGHT_BACKUPS_H_

#include <array>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace mobilenet {

class WeightBackups {
 public:
  static constexpr int kPullsPerWorker = 2;

  // Backups of `size` weights for workers [0, num_workers) (0: none at all). Allocates
  // nothing.
  WeightBackups(int num_workers, int64_t size);

  int num_workers() const { return static_cast<int>(workers_.size()); }
  int64_t size() const { return size_; }

  // Keeps `weights` (size() floats: checked) as worker `worker`'s pull of `version`, in
  // place of its backup of the oldest version (the first time, allocating
  // kPullsPerWorker * size() floats for the worker). Nothing is copied for a version the
  // worker's backups already hold, for a version older than all of them when they are
  // full, or for a worker outside [0, num_workers()).
  void Record(int worker, int64_t version, absl::Span<const float> weights);

  // The size() weights `worker` pulled at `version`, or nullptr when no backup matches
  // (never recorded, replaced by newer pulls, forgotten, or a worker outside
  // [0, num_workers())). Points into this object; valid until the next Record or Clear.
  const float* Find(int worker, int64_t version) const;

  // Forgets every backup (their memory stays allocated).
  void Clear();

  // Floats allocated for backups so far.
  int64_t allocated_floats() const;

 private:
  struct Worker {
    std::vector<float> weights;                     // kPullsPerWorker * size_ floats once allocated
    std::array<int64_t, kPullsPerWorker> versions;  // of each backup; -1: empty
  };

  int64_t size_;
  std::vector<Worker> workers_;
};

// Writes g~[i] = g[i] + lambda * g[i]^2 * (now[i] - backup[i]) for every i of `gradients`
// into `corrected` (the same size: checked; `now` and `backup` hold as many floats),
// computed in double so that only a true overflow of the float result is infinite (a
// zero difference leaves g exactly as it is). Returns the largest |g~[i]|: infinite or
// NaN when some element is.
float CompensateDelay(float lambda, absl::Span<const float> gradients, const float* now,
                      const float* backup, absl::Span<float> corrected);

// DC-ASGD-a: as CompensateDelay with lambda / sqrt(ms'[i]) in place of lambda, where
// ms'[i] = rho * mean_square[i] + (1 - rho) * g[i]^2 is RMSprop's mean square once it has
// seen g (`mean_square`: as many floats as `gradients`, >= 0; rho in [0, 1)). Since
// ms' >= (1 - rho) g^2, the correction is at most lambda * |g| * |now - backup| /
// sqrt(1 - rho); where ms' is 0 (so is g) g is left as it is.
float CompensateDelayAdaptive(float lambda, absl::Span<const float> gradients, const float* now,
                              const float* backup, const float* mean_square, float rho,
                              absl::Span<float> corrected);

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CORE_WEIGHT_BACKUPS_H_
