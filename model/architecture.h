// The MobileNet-V1 architecture (Howard et al., 2017, Table 1) as data: the layer list
// for a width multiplier, input resolution, input channels and class count. Knows nothing
// of weights or kernels; the network, the description table and the ONNX export read it.
#ifndef MOBILENET_MODEL_ARCHITECTURE_H_
#define MOBILENET_MODEL_ARCHITECTURE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mobilenet {

struct MobileNetConfig {
  float alpha = 1.0f;       // width multiplier; channels are max(int(c * alpha), 8)
  int resolution = 224;     // input height and width
  int input_channels = 3;
  int num_classes = 1000;
  bool shallow = false;     // the paper's Table 5 variant: the five 14x14x512 blocks removed
};

enum class ConvKind { kFull, kDepthwise, kPointwise };

// One convolution, always followed by batch norm and ReLU6.
struct ConvLayerSpec {
  std::string name;  // TensorFlow-slim scope, e.g. "MobilenetV1/Conv2d_3_depthwise"
  ConvKind kind;
  int kernel;        // 3 for full and depthwise, 1 for pointwise
  int stride;
  int in_h, in_w, in_channels;
  int out_h, out_w, out_channels;
};

struct Architecture {
  MobileNetConfig config;
  std::vector<ConvLayerSpec> convs;  // in order: full conv, then depthwise/pointwise pairs
  // Global average pooling over the last conv's output, then the classifier.
  std::string classifier_name;       // "MobilenetV1/Logits/Conv2d_1c_1x1"
  int classifier_in = 0;             // channels of the last conv
  int classifier_out = 0;            // num_classes
};

// Builds the layer list: Conv2d_0 (full 3x3, stride 2), then blocks Conv2d_1..13
// (<name>_depthwise, <name>_pointwise) with SAME padding (out = ceil(in / stride)), so any
// resolution works. The shallow variant keeps the original numbering and skips blocks 7-11.
// Errors (InvalidArgument, naming the value) for alpha outside (0, 16], resolution outside
// [1, 4096], input_channels outside [1, 4096], num_classes outside [2, 2^20].
absl::StatusOr<Architecture> BuildArchitecture(const MobileNetConfig& config);

// Channels for a base width under the multiplier: max(int(base * alpha), 8).
int ScaledChannels(int base, float alpha);

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_ARCHITECTURE_H_
