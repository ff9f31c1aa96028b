#include "model/onnx_export.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/class_names.h"
#include "common/status_macros.h"
#include "model/mobilenet_v1.h"

namespace mobilenet {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "ONNX raw_data is little-endian; floats are copied as is");

constexpr char kReluMin[] = "relu6/min";
constexpr char kReluMax[] = "relu6/max";

// The `expected_size` floats of tensor `name` in `layout`.
absl::StatusOr<const float*> TensorData(const ParameterLayout& layout, const float* buffer,
                                        const std::string& name, int64_t expected_size,
                                        absl::string_view layout_name) {
  absl::StatusOr<const TensorView*> view = layout.Find(name);
  if (!view.ok()) {
    return absl::NotFoundError(
        absl::StrCat("ONNX export: ", layout_name, " layout has no tensor \"", name, "\""));
  }
  if ((*view)->size != expected_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("ONNX export: tensor \"", name, "\" has ", (*view)->size,
                     " floats, the architecture expects ", expected_size));
  }
  return buffer + (*view)->offset;
}

onnx::TensorProto* AddInitializer(onnx::GraphProto* graph, const std::string& name,
                                  const std::vector<int64_t>& dims, const float* data) {
  onnx::TensorProto* t = graph->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  int64_t size = 1;
  for (int64_t d : dims) {
    t->add_dims(d);
    size *= d;
  }
  t->set_raw_data(reinterpret_cast<const char*>(data), size * sizeof(float));
  return t;
}

void AddIntsAttribute(onnx::NodeProto* node, const std::string& name,
                      const std::vector<int64_t>& values) {
  onnx::AttributeProto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}

void AddIntAttribute(onnx::NodeProto* node, const std::string& name, int64_t value) {
  onnx::AttributeProto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

void AddFloatAttribute(onnx::NodeProto* node, const std::string& name, float value) {
  onnx::AttributeProto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(value);
}

onnx::NodeProto* AddNode(onnx::GraphProto* graph, const std::string& op, const std::string& name,
                         const std::vector<std::string>& inputs, const std::string& output) {
  onnx::NodeProto* node = graph->add_node();
  node->set_op_type(op);
  node->set_name(name);
  for (const std::string& input : inputs) node->add_input(input);
  node->add_output(output);
  return node;
}

// A float tensor value; a negative dimension becomes the symbolic "batch".
void SetFloatTensorType(onnx::ValueInfoProto* value, const std::string& name,
                        const std::vector<int64_t>& dims) {
  value->set_name(name);
  onnx::TypeProto_Tensor* tensor = value->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) {
    onnx::TensorShapeProto_Dimension* dim = tensor->mutable_shape()->add_dim();
    if (d < 0) {
      dim->set_dim_param("batch");
    } else {
      dim->set_dim_value(d);
    }
  }
}

// TensorFlow SAME padding along one axis: (before, after), the extra one after.
std::pair<int64_t, int64_t> SamePads(int in, int out, int kernel, int stride) {
  const int64_t total = std::max<int64_t>(int64_t{out - 1} * stride + kernel - in, 0);
  return {total / 2, total - total / 2};
}

// The convolution's weights in ONNX's OIHW order, from TensorFlow's HWIO (full),
// [K, K, C] (depthwise) or [Cin, Cout] (pointwise).
std::vector<float> ToOihw(const ConvLayerSpec& c, const float* w) {
  const int k = c.kernel, cin = c.in_channels, cout = c.out_channels;
  std::vector<float> out;
  switch (c.kind) {
    case ConvKind::kFull:
      out.resize(static_cast<size_t>(cout) * cin * k * k);
      for (int h = 0; h < k; ++h) {
        for (int x = 0; x < k; ++x) {
          for (int i = 0; i < cin; ++i) {
            for (int o = 0; o < cout; ++o) {
              out[((static_cast<size_t>(o) * cin + i) * k + h) * k + x] =
                  w[((static_cast<size_t>(h) * k + x) * cin + i) * cout + o];
            }
          }
        }
      }
      break;
    case ConvKind::kDepthwise:
      out.resize(static_cast<size_t>(cout) * k * k);
      for (int h = 0; h < k; ++h) {
        for (int x = 0; x < k; ++x) {
          for (int ch = 0; ch < cout; ++ch) {
            out[(static_cast<size_t>(ch) * k + h) * k + x] =
                w[(static_cast<size_t>(h) * k + x) * cout + ch];
          }
        }
      }
      break;
    case ConvKind::kPointwise:
      out.resize(static_cast<size_t>(cout) * cin);
      for (int i = 0; i < cin; ++i) {
        for (int o = 0; o < cout; ++o) {
          out[static_cast<size_t>(o) * cin + i] = w[static_cast<size_t>(i) * cout + o];
        }
      }
      break;
  }
  return out;
}

int64_t WeightCount(const ConvLayerSpec& c) {
  const int64_t k2 = int64_t{c.kernel} * c.kernel;
  return c.kind == ConvKind::kDepthwise ? k2 * c.in_channels : k2 * c.in_channels * c.out_channels;
}

}  // namespace

absl::StatusOr<onnx::ModelProto> ExportOnnx(const Architecture& arch,
                                            const ParameterLayout& params_layout,
                                            const float* params,
                                            const ParameterLayout& state_layout,
                                            const float* state) {
  if (params == nullptr || state == nullptr) {
    return absl::InvalidArgumentError("ONNX export: null parameter or state buffer");
  }
  if (arch.convs.empty()) {
    return absl::InvalidArgumentError("ONNX export: architecture has no convolutions");
  }
  const MobileNetConfig& config = arch.config;
  onnx::ModelProto model;
  model.set_ir_version(7);  // the IR of opset 13 (ONNX 1.8), readable by older runtimes
  model.set_producer_name("mobilenet_ps");
  model.set_producer_version("1");
  model.set_domain("mobilenet_ps");
  model.set_model_version(1);
  model.set_doc_string(absl::StrCat(
      "MobileNet-V1 alpha=", config.alpha, " resolution=", config.resolution,
      " input_channels=", config.input_channels, " num_classes=", config.num_classes,
      config.shallow ? " shallow" : "", "; input NCHW float, output pre-softmax logits"));
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpsetVersion);
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"alpha", absl::StrCat(config.alpha)},
           {"resolution", absl::StrCat(config.resolution)},
           {"input_channels", absl::StrCat(config.input_channels)},
           {"num_classes", absl::StrCat(config.num_classes)},
           {"shallow", config.shallow ? "true" : "false"}}) {
    onnx::StringStringEntryProto* entry = model.add_metadata_props();
    entry->set_key(key);
    entry->set_value(value);
  }

  onnx::GraphProto* graph = model.mutable_graph();
  graph->set_name("MobilenetV1");
  const ConvLayerSpec& first = arch.convs.front();
  SetFloatTensorType(graph->add_input(), "input", {-1, first.in_channels, first.in_h, first.in_w});
  const float relu_min = 0.0f, relu_max = 6.0f;
  AddInitializer(graph, kReluMin, {}, &relu_min);
  AddInitializer(graph, kReluMax, {}, &relu_max);

  std::string x = "input";
  for (const ConvLayerSpec& c : arch.convs) {
    const bool depthwise = c.kind == ConvKind::kDepthwise;
    const std::string weights_name = c.name + (depthwise ? "/depthwise_weights" : "/weights");
    ASSIGN_OR_RETURN(const float* w,
                     TensorData(params_layout, params, weights_name, WeightCount(c), "parameter"));
    const std::string bn = c.name + "/BatchNorm/";
    ASSIGN_OR_RETURN(const float* gamma,
                     TensorData(params_layout, params, bn + "gamma", c.out_channels, "parameter"));
    ASSIGN_OR_RETURN(const float* beta,
                     TensorData(params_layout, params, bn + "beta", c.out_channels, "parameter"));
    ASSIGN_OR_RETURN(const float* mean,
                     TensorData(state_layout, state, bn + "moving_mean", c.out_channels, "state"));
    ASSIGN_OR_RETURN(const float* variance, TensorData(state_layout, state, bn + "moving_variance",
                                                       c.out_channels, "state"));

    const std::vector<float> oihw = ToOihw(c, w);
    AddInitializer(graph, weights_name,
                   {c.out_channels, depthwise ? 1 : c.in_channels, c.kernel, c.kernel},
                   oihw.data());
    AddInitializer(graph, bn + "gamma", {c.out_channels}, gamma);
    AddInitializer(graph, bn + "beta", {c.out_channels}, beta);
    AddInitializer(graph, bn + "moving_mean", {c.out_channels}, mean);
    AddInitializer(graph, bn + "moving_variance", {c.out_channels}, variance);

    const std::string conv_out = c.name + (depthwise ? "/depthwise" : "/Conv2D");
    onnx::NodeProto* conv = AddNode(graph, "Conv", conv_out, {x, weights_name}, conv_out);
    const auto [top, bottom] = SamePads(c.in_h, c.out_h, c.kernel, c.stride);
    const auto [left, right] = SamePads(c.in_w, c.out_w, c.kernel, c.stride);
    AddIntsAttribute(conv, "kernel_shape", {c.kernel, c.kernel});
    AddIntsAttribute(conv, "strides", {c.stride, c.stride});
    AddIntsAttribute(conv, "pads", {top, left, bottom, right});
    AddIntsAttribute(conv, "dilations", {1, 1});
    AddIntAttribute(conv, "group", depthwise ? c.in_channels : 1);

    const std::string bn_out = c.name + "/BatchNorm/FusedBatchNorm";
    onnx::NodeProto* norm = AddNode(
        graph, "BatchNormalization", bn_out,
        {conv_out, bn + "gamma", bn + "beta", bn + "moving_mean", bn + "moving_variance"}, bn_out);
    AddFloatAttribute(norm, "epsilon", kBatchNormEpsilon);

    const std::string relu_out = c.name + "/Relu6";
    AddNode(graph, "Clip", relu_out, {bn_out, kReluMin, kReluMax}, relu_out);
    x = relu_out;
  }

  const std::string classifier_weights = arch.classifier_name + "/weights";
  const std::string classifier_biases = arch.classifier_name + "/biases";
  ASSIGN_OR_RETURN(const float* fc_w,
                   TensorData(params_layout, params, classifier_weights,
                              int64_t{arch.classifier_in} * arch.classifier_out, "parameter"));
  ASSIGN_OR_RETURN(const float* fc_b, TensorData(params_layout, params, classifier_biases,
                                                 arch.classifier_out, "parameter"));
  AddInitializer(graph, classifier_weights, {arch.classifier_in, arch.classifier_out}, fc_w);
  AddInitializer(graph, classifier_biases, {arch.classifier_out}, fc_b);

  const std::string pooled = "MobilenetV1/Logits/AvgPool_1a";
  AddNode(graph, "GlobalAveragePool", pooled, {x}, pooled);
  const std::string flat = "MobilenetV1/Logits/Flatten";
  AddIntAttribute(AddNode(graph, "Flatten", flat, {pooled}, flat), "axis", 1);
  onnx::NodeProto* gemm = AddNode(graph, "Gemm", arch.classifier_name,
                                  {flat, classifier_weights, classifier_biases}, "logits");
  AddFloatAttribute(gemm, "alpha", 1.0f);
  AddFloatAttribute(gemm, "beta", 1.0f);
  AddIntAttribute(gemm, "transA", 0);
  AddIntAttribute(gemm, "transB", 0);
  SetFloatTensorType(graph->add_output(), "logits", {-1, arch.classifier_out});
  return model;
}

absl::Status SetOnnxClassNames(const std::vector<std::string>& class_names, int num_classes,
                               onnx::ModelProto& model) {
  const absl::Status valid = CheckClassNames(class_names, num_classes);
  if (!valid.ok())
    return absl::InvalidArgumentError(absl::StrCat("ONNX export: ", valid.message()));
  auto* props = model.mutable_metadata_props();
  for (int i = props->size() - 1; i >= 0; --i) {
    if (props->Get(i).key() == kClassNamesKey) props->DeleteSubrange(i, 1);
  }
  if (class_names.empty()) return absl::OkStatus();
  onnx::StringStringEntryProto* entry = model.add_metadata_props();
  entry->set_key(kClassNamesKey);
  entry->set_value(FormatClassNames(class_names));
  return absl::OkStatus();
}

absl::Status WriteOnnx(const std::string& path, const onnx::ModelProto& model) {
  const size_t bytes = model.ByteSizeLong();
  if (bytes > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ONNX model of ", bytes, " bytes exceeds protobuf's 2 GiB limit"));
  }
  std::string serialized;
  if (!model.SerializeToString(&serialized)) {
    return absl::InternalError(absl::StrCat(path, ": serializing the ONNX model failed"));
  }
  std::FILE* file = std::fopen(path.c_str(), "wb");
  auto error = [&](absl::string_view what) {
    const int e = errno;
    return absl::Status(e == 0 ? absl::StatusCode::kUnknown : absl::ErrnoToStatusCode(e),
                        absl::StrCat(path, ": ", what, ": ", std::strerror(e)));
  };
  if (file == nullptr) return error("cannot create ONNX file");
  const bool written =
      std::fwrite(serialized.data(), 1, serialized.size(), file) == serialized.size();
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) return error("write");
  return absl::OkStatus();
}

}  // namespace mobilenet
