#include "model/parameter_layout.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mobilenet {

const char* TensorRoleName(TensorRole role) {
  switch (role) {
    case TensorRole::kConvWeights:
      return "conv_weights";
    case TensorRole::kDepthwiseWeights:
      return "depthwise_weights";
    case TensorRole::kBatchNormGamma:
      return "batch_norm_gamma";
    case TensorRole::kBatchNormBeta:
      return "batch_norm_beta";
    case TensorRole::kFullyConnectedWeights:
      return "fully_connected_weights";
    case TensorRole::kFullyConnectedBias:
      return "fully_connected_bias";
    case TensorRole::kMovingMean:
      return "moving_mean";
    case TensorRole::kMovingVariance:
      return "moving_variance";
  }
  return "unknown";
}

void ParameterLayout::Add(std::string name, std::vector<int64_t> shape, TensorRole role) {
  int64_t size = 1;
  for (int64_t d : shape) {
    if (d < 1) {
      std::fprintf(stderr, "ParameterLayout::Add: tensor %s has a dimension %lld < 1\n",
                   name.c_str(), static_cast<long long>(d));
      std::abort();
    }
    size *= d;
  }
  if (!index_.emplace(name, views_.size()).second) {
    std::fprintf(stderr, "ParameterLayout::Add: duplicate tensor name %s\n", name.c_str());
    std::abort();
  }
  TensorView view;
  view.name = std::move(name);
  view.shape = std::move(shape);
  view.offset = total_size_;
  view.size = size;
  view.role = role;
  total_size_ += size;
  views_.push_back(std::move(view));
}

absl::StatusOr<const TensorView*> ParameterLayout::Find(absl::string_view name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return absl::NotFoundError(absl::StrCat("no tensor named \"", name, "\" in the layout (",
                                            views_.size(), " tensors)"));
  }
  return &views_[it->second];
}

}  // namespace mobilenet
