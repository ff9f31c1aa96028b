// The update rule of a parameter server: one class per rule, each owning its own slots
// (per-parameter state such as momentum accumulators) for a contiguous range of n
// parameters. Knows no locks and no I/O; the caller decides who may touch which range.
#ifndef MOBILENET_COMMON_OPTIMIZER_H_
#define MOBILENET_COMMON_OPTIMIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace mobilenet {

enum class OptimizerKind { kSgd, kMomentum, kRmsProp };

// "sgd", "momentum" or "rmsprop".
const char* OptimizerKindName(OptimizerKind kind);

// Parses "sgd", "momentum" or "rmsprop" (as OptimizerKindName spells them); otherwise
// InvalidArgument naming the text and the accepted spellings.
absl::StatusOr<OptimizerKind> ParseOptimizerKind(absl::string_view text);

// Hyper-parameters of every rule; each rule reads only its own. Defaults are
// TensorFlow-slim's MobileNet-V1 training recipe.
struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kRmsProp;
  float momentum = 0.9f;       // momentum and rmsprop; in [0, 1)
  float rmsprop_decay = 0.9f;  // rho of rmsprop; in [0, 1)
  float epsilon = 1.0f;        // rmsprop; > 0
};

// A named per-parameter state array, `values.size()` == the optimizer's size(). The span
// points into the optimizer and stays valid for its lifetime; writing through it (a
// checkpoint restore) changes the optimizer's state.
struct OptimizerSlot {
  std::string name;  // e.g. "rms", "momentum" (TensorFlow's slot names)
  absl::Span<float> values;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;

  virtual OptimizerKind kind() const = 0;

  // Number of parameters of the range this optimizer owns slots for.
  virtual int64_t size() const = 0;

  // Updates weights[i] for i in [begin, end) from gradient[i]; both pointers address
  // element 0 of the range (not element `begin`). 0 <= begin <= end <= size().
  // Calls on disjoint [begin, end) may run concurrently; overlapping calls may not.
  virtual void Apply(float learning_rate, int64_t begin, int64_t end, const float* gradient,
                     float* weights) = 0;

  // Every slot of this rule, in a fixed order (empty for plain SGD).
  virtual std::vector<OptimizerSlot> slots() = 0;
};

// A new optimizer of `config.kind` with freshly initialized slots for `size` parameters.
// InvalidArgument naming the field if a hyper-parameter of that kind is out of range or
// size < 0.
absl::StatusOr<std::unique_ptr<Optimizer>> CreateOptimizer(const OptimizerConfig& config,
                                                           int64_t size);

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_OPTIMIZER_H_
