// Named views into one flat float buffer: every tensor of the model is a (name, shape,
// offset) range, so weights, gradients and optimizer slots are each one contiguous array,
// and parameter servers shard the model by ranges.
#ifndef MOBILENET_MODEL_PARAMETER_LAYOUT_H_
#define MOBILENET_MODEL_PARAMETER_LAYOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mobilenet {

// What a tensor is; optimizers use it (e.g. weight decay applies to kConvWeights and
// kFullyConnectedWeights only, never to depthwise filters, batch norm or biases).
enum class TensorRole {
  kConvWeights,            // full 3x3 and pointwise convolution weights
  kDepthwiseWeights,
  kBatchNormGamma,
  kBatchNormBeta,
  kFullyConnectedWeights,
  kFullyConnectedBias,
  kMovingMean,             // batch-norm moving statistics (not trainable)
  kMovingVariance,
};

const char* TensorRoleName(TensorRole role);

struct TensorView {
  std::string name;          // e.g. "MobilenetV1/Conv2d_1_depthwise/depthwise_weights"
  std::vector<int64_t> shape;
  int64_t offset = 0;        // in floats, into the flat buffer
  int64_t size = 0;          // product of shape
  TensorRole role;
};

// An ordered list of tensor views packed back to back. Immutable once built.
class ParameterLayout {
 public:
  // Appends a tensor at the current end. Names must be unique (checked).
  void Add(std::string name, std::vector<int64_t> shape, TensorRole role);

  const std::vector<TensorView>& views() const { return views_; }
  int64_t total_size() const { return total_size_; }

  // The view with this name, or NotFound naming it.
  absl::StatusOr<const TensorView*> Find(absl::string_view name) const;

 private:
  std::vector<TensorView> views_;
  absl::flat_hash_map<std::string, size_t> index_;
  int64_t total_size_ = 0;
};

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_PARAMETER_LAYOUT_H_
