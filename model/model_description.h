// A description of a MobileNet-V1: a per-layer table and totals of parameters and
// multiply-adds, counted as the paper counts them (weights only: convolution and
// fully-connected weights; batch-norm scale/offset and the classifier bias reported
// apart), and the share of each layer type (the paper's Table 2).
#ifndef MOBILENET_MODEL_MODEL_DESCRIPTION_H_
#define MOBILENET_MODEL_MODEL_DESCRIPTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "model/architecture.h"

namespace mobilenet {

enum class LayerType { kFullConv3x3, kDepthwiseConv3x3, kPointwiseConv1x1, kFullyConnected };

struct LayerDescription {
  std::string name;
  LayerType type;
  int stride;
  std::string input_shape;   // "112x112x32"
  std::string output_shape;  // "112x112x64"
  int64_t params;            // weights only
  int64_t mult_adds;
};

struct TypeShare {
  LayerType type;
  double mult_adds_percent;
  double params_percent;
};

struct ModelDescription {
  std::vector<LayerDescription> layers;
  int64_t params = 0;             // as the paper counts: conv + fc weights
  int64_t mult_adds = 0;
  int64_t batch_norm_params = 0;  // gamma + beta
  int64_t classifier_bias = 0;
  std::vector<TypeShare> shares;  // one per LayerType present
};

ModelDescription Describe(const Architecture& arch);

const char* LayerTypeName(LayerType type);  // "Conv 1x1", "Conv dw 3x3", ...

// A human-readable table: one row per layer, then totals and shares.
std::string FormatDescriptionTable(const ModelDescription& d);
// The same as one JSON object.
std::string FormatDescriptionJson(const ModelDescription& d);

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_MODEL_DESCRIPTION_H_
