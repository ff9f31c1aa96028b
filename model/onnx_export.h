// Export of a MobileNet-V1 (architecture + weights + batch-norm moving statistics) as an
// ONNX model for inference elsewhere (onnxruntime, TensorRT, ...).
//
// Graph (opset 13, standard operators only):
//   input  "input"  float [batch, Cin, R, R] (NCHW; "batch" is a symbolic dimension)
//   per convolution: Conv (OIHW weights; group = C for depthwise; TensorFlow SAME padding
//     as explicit, possibly asymmetric pads) -> BatchNormalization (moving statistics,
//     epsilon kBatchNormEpsilon; not folded into the Conv, so every tensor keeps its
//     TensorFlow-slim name) -> Clip(0, 6)
//   GlobalAveragePool -> Flatten -> Gemm (classifier weights [Cin, K], biases [K])
//   output "logits" float [batch, num_classes] (pre-softmax)
// Initializers carry the TensorFlow-slim tensor names of the parameter layout.
#ifndef MOBILENET_MODEL_ONNX_EXPORT_H_
#define MOBILENET_MODEL_ONNX_EXPORT_H_

#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/architecture.h"
#include "model/parameter_layout.h"

namespace mobilenet {

inline constexpr int kOnnxOpsetVersion = 13;

// Builds the model from `params` (params_layout.total_size() floats, laid out as
// BuildParameterLayout(arch)) and `state` (state_layout.total_size() floats, as
// BuildStateLayout(arch)); both are copied. Errors: NotFound naming a tensor the
// architecture needs but a layout lacks; InvalidArgument naming a tensor whose size does
// not match the architecture, or for null buffers.
absl::StatusOr<onnx::ModelProto> ExportOnnx(const Architecture& arch,
                                            const ParameterLayout& params_layout,
                                            const float* params,
                                            const ParameterLayout& state_layout,
                                            const float* state);

// Records `class_names` (index i names class i; checked with CheckClassNames for the
// model's classes) in the model's metadata_props under "class_names", one name per line,
// so a deployed model carries its labels; replaces an earlier entry. An empty list
// removes the entry (names unknown). InvalidArgument for names the check refuses.
absl::Status SetOnnxClassNames(const std::vector<std::string>& class_names, int num_classes,
                               onnx::ModelProto& model);

// Serializes `model` to `path` (binary protobuf). Errors name the file: the errno text for
// I/O failures, InvalidArgument if the model exceeds protobuf's 2 GiB limit.
absl::Status WriteOnnx(const std::string& path, const onnx::ModelProto& model);

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_ONNX_EXPORT_H_
