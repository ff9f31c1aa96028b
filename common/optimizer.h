// The update rule of a parameter server: one class per rule, each owning its own slots
// (per-parameter state such as momentum accumulators) for a contiguous range of n
// parameters. Knows no locks and no I/O; the caller decides who may touch which range.
//
// A parameter server applies a push whole or not at all, and never lets a weight or slot
// become non-finite. Every rule therefore also answers, before an update changes
// anything, whether it will leave every value finite: UpdateStaysFinite decides it from
// bounds the rule keeps on its own slots (cheap, conservative: false proves nothing), and
// FindNonFiniteUpdate computes the update without storing it (exact, as costly as the
// update itself) for the pushes the bounds cannot clear.
#ifndef MOBILENET_COMMON_OPTIMIZER_H_
#define MOBILENET_COMMON_OPTIMIZER_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
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
// checkpoint restore) changes the optimizer's state, after which the writer calls
// SlotsChanged().
struct OptimizerSlot {
  std::string name;  // e.g. "rms", "momentum" (TensorFlow's slot names)
  absl::Span<float> values;
  // Values a valid state never goes below (e.g. 0 for a mean square); -inf: none.
  float lower_bound = -std::numeric_limits<float>::infinity();
};

// An element an update would leave NaN or infinite.
struct NonFiniteUpdate {
  int64_t index = 0;   // in [0, size())
  std::string what;    // "weight" or the slot's name
  float value = 0.0f;  // what it would become
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;

  virtual OptimizerKind kind() const = 0;

  // Number of parameters of the range this optimizer owns slots for.
  virtual int64_t size() const = 0;

  // Updates weights[i] for i in [begin, end) from gradient[i]; both pointers address
  // element 0 of the range (not element `begin`). 0 <= begin <= end <= size(). Returns
  // the largest |weight| of [begin, end) afterwards. Calls on disjoint [begin, end) may
  // not run concurrently (they share the slot bounds).
  virtual float Apply(float learning_rate, int64_t begin, int64_t end, const float* gradient,
                      float* weights) = 0;

  // True when Apply(learning_rate, 0, size(), g, w) is sure to leave every weight and slot
  // finite, for any g and w with |g[i]| <= max_abs_gradient and |w[i]| <= max_abs_weight
  // (finite bounds, learning_rate > 0). Decided from bounds on this optimizer's slots;
  // false means only that it cannot tell.
  virtual bool UpdateStaysFinite(float learning_rate, float max_abs_gradient,
                                 float max_abs_weight) const = 0;

  // Changes nothing: the first element (lowest index) whose weight or slot
  // Apply(learning_rate, 0, size(), gradient, weights) would leave NaN or infinite, or
  // nullopt when it would leave every value finite.
  virtual std::optional<NonFiniteUpdate> FindNonFiniteUpdate(float learning_rate,
                                                             const float* gradient,
                                                             const float* weights) const = 0;

  // Every slot of this rule, in a fixed order (empty for plain SGD).
  virtual std::vector<OptimizerSlot> slots() = 0;

  // Recomputes the slot bounds after the slots were written through slots().
  virtual void SlotsChanged() = 0;
};

// A new optimizer of `config.kind` with freshly initialized slots for `size` parameters.
// InvalidArgument naming the field if a hyper-parameter of that kind is out of range or
// size < 0.
absl::StatusOr<std::unique_ptr<Optimizer>> CreateOptimizer(const OptimizerConfig& config,
                                                           int64_t size);

// Bounds an update rule reasons from: an update whose inputs and state all lie within
// kSafeMagnitude, and whose learning rate times a gradient bound stays within it, cannot
// overflow a float (whose largest value is about 3.4e38) in any rule here.
inline constexpr float kSafeMagnitude = 1e30f;

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_OPTIMIZER_H_
