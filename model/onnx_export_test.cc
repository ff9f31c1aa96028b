#include "model/onnx_export.h"

#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/class_names.h"
#include "common/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/initializer.h"
#include "model/layers/random_tensor.h"
#include "model/mobilenet_v1.h"

namespace mobilenet {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kPython[] = "/usr/bin/python3";

// tests/onnx_reference.py, found from this file's path: model/onnx_export_test.cc.
std::string ReferenceScript() {
  return (fs::path(__FILE__).parent_path().parent_path() / "tests" / "onnx_reference.py").string();
}

bool HavePythonOnnx() {
  static const bool have =
      access(kPython, X_OK) == 0 &&
      std::system("/usr/bin/python3 -c 'import numpy, onnx' >/dev/null 2>&1") == 0;
  return have;
}

// A network with its weights: He-initialized convolutions, random batch-norm scales and
// offsets, and moving statistics taken from a training step's batch statistics (so the
// activations are normalized, not clipped away).
struct TrainedNet {
  std::unique_ptr<MobileNetV1> net;
  std::vector<float> params, state;
};

TrainedNet MakeNet(const MobileNetConfig& config, uint32_t seed) {
  TrainedNet t;
  absl::StatusOr<std::unique_ptr<MobileNetV1>> net = MobileNetV1::Create(config);
  EXPECT_TRUE(net.ok()) << net.status();
  t.net = *std::move(net);
  const ParameterLayout& params = t.net->parameter_layout();
  const ParameterLayout& state = t.net->state_layout();
  t.params.resize(params.total_size());
  InitializeAll(params, seed, t.params.data());
  for (const TensorView& v : params.views()) {
    float low = 0, high = 0;
    if (v.role == TensorRole::kBatchNormGamma) low = 0.5f, high = 1.5f;
    if (v.role == TensorRole::kBatchNormBeta || v.role == TensorRole::kFullyConnectedBias) {
      low = -0.3f, high = 0.3f;
    }
    if (low == high) continue;
    const std::vector<float> values = RandomTensor(v.size, seed + v.offset, low, high);
    std::copy(values.begin(), values.end(), t.params.begin() + v.offset);
  }
  const int batch = 16;  // enough samples that no channel's variance is degenerate
  const int64_t image = int64_t{config.resolution} * config.resolution * config.input_channels;
  const std::vector<float> images = RandomTensor(batch * image, seed + 1);
  std::vector<int> labels(batch);
  for (int i = 0; i < batch; ++i) labels[i] = i % config.num_classes;
  std::vector<float> gradients(params.total_size());
  t.state.resize(state.total_size());
  t.net->TrainStep(t.params.data(), images.data(), labels.data(), batch, 0.0f, gradients.data(),
                   t.state.data());
  return t;
}

MobileNetConfig SmallConfig() {
  MobileNetConfig config;
  config.alpha = 0.25f;
  config.resolution = 32;
  config.input_channels = 3;
  config.num_classes = 10;
  return config;
}

absl::StatusOr<onnx::ModelProto> Export(const TrainedNet& t) {
  return ExportOnnx(t.net->architecture(), t.net->parameter_layout(), t.params.data(),
                    t.net->state_layout(), t.state.data());
}

const onnx::NodeProto* FindNode(const onnx::ModelProto& model, const std::string& name) {
  for (const onnx::NodeProto& node : model.graph().node()) {
    if (node.name() == name) return &node;
  }
  return nullptr;
}

const onnx::AttributeProto* FindAttribute(const onnx::NodeProto& node, const std::string& name) {
  for (const onnx::AttributeProto& a : node.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

std::vector<int64_t> Ints(const onnx::NodeProto& node, const std::string& name) {
  const onnx::AttributeProto* a = FindAttribute(node, name);
  if (a == nullptr) return {};
  return std::vector<int64_t>(a->ints().begin(), a->ints().end());
}

const onnx::TensorProto* FindInitializer(const onnx::ModelProto& model, const std::string& name) {
  for (const onnx::TensorProto& t : model.graph().initializer()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

float Element(const onnx::TensorProto& t, int64_t i) {
  float v;
  std::memcpy(&v, t.raw_data().data() + i * sizeof(float), sizeof(float));
  return v;
}

std::vector<int64_t> Dims(const onnx::TensorProto& t) {
  return std::vector<int64_t>(t.dims().begin(), t.dims().end());
}

class OnnxExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "onnx_export_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  std::string dir_;
};

TEST_F(OnnxExportTest, PassesCheckerAndShapeInference) {
  const TrainedNet t = MakeNet(SmallConfig(), 7);
  absl::StatusOr<onnx::ModelProto> model = Export(t);
  ASSERT_TRUE(model.ok()) << model.status();
  try {
    onnx::checker::check_model(*model);
    onnx::shape_inference::InferShapes(*model, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(true, 1));
  } catch (const std::exception& e) {
    FAIL() << "ONNX validation failed: " << e.what();
  }
  // Shape inference filled in every intermediate value; spot-check the pooled features.
  bool found_pool = false;
  for (const onnx::ValueInfoProto& v : model->graph().value_info()) {
    if (v.name() != "MobilenetV1/Logits/AvgPool_1a") continue;
    found_pool = true;
    const onnx::TensorShapeProto& shape = v.type().tensor_type().shape();
    ASSERT_EQ(shape.dim_size(), 4);
    EXPECT_EQ(shape.dim(0).dim_param(), "batch");
    EXPECT_EQ(shape.dim(1).dim_value(), t.net->architecture().classifier_in);
    EXPECT_EQ(shape.dim(2).dim_value(), 1);
  }
  EXPECT_TRUE(found_pool);
}

TEST_F(OnnxExportTest, GraphStructure) {
  const TrainedNet t = MakeNet(SmallConfig(), 7);
  const Architecture& arch = t.net->architecture();
  absl::StatusOr<onnx::ModelProto> model = Export(t);
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ(model->opset_import_size(), 1);
  EXPECT_EQ(model->opset_import(0).version(), 13);

  const onnx::GraphProto& graph = model->graph();
  ASSERT_EQ(graph.input_size(), 1);
  EXPECT_EQ(graph.input(0).name(), "input");
  const onnx::TensorShapeProto& in = graph.input(0).type().tensor_type().shape();
  ASSERT_EQ(in.dim_size(), 4);
  EXPECT_EQ(in.dim(0).dim_param(), "batch");
  EXPECT_EQ(in.dim(1).dim_value(), 3);
  EXPECT_EQ(in.dim(2).dim_value(), 32);
  EXPECT_EQ(in.dim(3).dim_value(), 32);
  ASSERT_EQ(graph.output_size(), 1);
  EXPECT_EQ(graph.output(0).name(), "logits");
  const onnx::TensorShapeProto& out = graph.output(0).type().tensor_type().shape();
  ASSERT_EQ(out.dim_size(), 2);
  EXPECT_EQ(out.dim(0).dim_param(), "batch");
  EXPECT_EQ(out.dim(1).dim_value(), 10);

  std::map<std::string, int> op_counts;
  for (const onnx::NodeProto& node : graph.node()) ++op_counts[node.op_type()];
  const int convs = static_cast<int>(arch.convs.size());
  EXPECT_EQ(op_counts, (std::map<std::string, int>{{"BatchNormalization", convs},
                                                   {"Clip", convs},
                                                   {"Conv", convs},
                                                   {"Flatten", 1},
                                                   {"Gemm", 1},
                                                   {"GlobalAveragePool", 1}}));

  // First conv: 32x32 stride 2 -> 16x16; SAME pads one row/column at the bottom/right.
  const onnx::NodeProto* conv0 = FindNode(*model, "MobilenetV1/Conv2d_0/Conv2D");
  ASSERT_NE(conv0, nullptr);
  EXPECT_THAT(Ints(*conv0, "pads"), ElementsAre(0, 0, 1, 1));
  EXPECT_THAT(Ints(*conv0, "strides"), ElementsAre(2, 2));
  EXPECT_EQ(FindAttribute(*conv0, "group")->i(), 1);
  // A stride-1 depthwise conv pads symmetrically and has one group per channel.
  const onnx::NodeProto* dw1 = FindNode(*model, "MobilenetV1/Conv2d_1_depthwise/depthwise");
  ASSERT_NE(dw1, nullptr);
  EXPECT_THAT(Ints(*dw1, "pads"), ElementsAre(1, 1, 1, 1));
  EXPECT_EQ(FindAttribute(*dw1, "group")->i(), arch.convs[1].in_channels);
  const onnx::NodeProto* bn = FindNode(*model, "MobilenetV1/Conv2d_0/BatchNorm/FusedBatchNorm");
  ASSERT_NE(bn, nullptr);
  EXPECT_FLOAT_EQ(FindAttribute(*bn, "epsilon")->f(), 0.001f);

  // Weights are transposed to OIHW: ONNX [o][i][h][w] == TensorFlow [h][w][i][o].
  const ParameterLayout& params = t.net->parameter_layout();
  const ConvLayerSpec& c0 = arch.convs[0];
  const onnx::TensorProto* w0 = FindInitializer(*model, "MobilenetV1/Conv2d_0/weights");
  ASSERT_NE(w0, nullptr);
  EXPECT_THAT(Dims(*w0), ElementsAre(c0.out_channels, 3, 3, 3));
  const float* tf_w0 = t.params.data() + (*params.Find("MobilenetV1/Conv2d_0/weights"))->offset;
  const int o = 5, i = 2, h = 1, w = 0;
  EXPECT_EQ(Element(*w0, ((o * 3 + i) * 3 + h) * 3 + w),
            tf_w0[((h * 3 + w) * 3 + i) * c0.out_channels + o]);
  const onnx::TensorProto* dw_w =
      FindInitializer(*model, "MobilenetV1/Conv2d_1_depthwise/depthwise_weights");
  ASSERT_NE(dw_w, nullptr);
  const int dw_c = arch.convs[1].in_channels;
  EXPECT_THAT(Dims(*dw_w), ElementsAre(dw_c, 1, 3, 3));
  const float* tf_dw =
      t.params.data() + (*params.Find("MobilenetV1/Conv2d_1_depthwise/depthwise_weights"))->offset;
  EXPECT_EQ(Element(*dw_w, (4 * 3 + 2) * 3 + 1), tf_dw[(2 * 3 + 1) * dw_c + 4]);
  const ConvLayerSpec& pw = arch.convs[2];
  const onnx::TensorProto* pw_w = FindInitializer(*model, pw.name + "/weights");
  ASSERT_NE(pw_w, nullptr);
  EXPECT_THAT(Dims(*pw_w), ElementsAre(pw.out_channels, pw.in_channels, 1, 1));
  const float* tf_pw = t.params.data() + (*params.Find(pw.name + "/weights"))->offset;
  EXPECT_EQ(Element(*pw_w, 3 * pw.in_channels + 6), tf_pw[6 * pw.out_channels + 3]);
  const onnx::TensorProto* mean =
      FindInitializer(*model, "MobilenetV1/Conv2d_0/BatchNorm/moving_mean");
  ASSERT_NE(mean, nullptr);
  EXPECT_EQ(
      Element(*mean, 3),
      t.state[(*t.net->state_layout().Find("MobilenetV1/Conv2d_0/BatchNorm/moving_mean"))->offset +
              3]);
  const onnx::TensorProto* fc = FindInitializer(*model, arch.classifier_name + "/weights");
  ASSERT_NE(fc, nullptr);
  EXPECT_THAT(Dims(*fc), ElementsAre(arch.classifier_in, 10));
}

TEST_F(OnnxExportTest, MissingOrMismatchedTensorsAreRefused) {
  const TrainedNet t = MakeNet(SmallConfig(), 7);
  const Architecture& arch = t.net->architecture();
  ParameterLayout missing;
  for (const TensorView& v : t.net->parameter_layout().views()) {
    if (v.name == "MobilenetV1/Conv2d_3_pointwise/BatchNorm/beta") continue;
    missing.Add(v.name, v.shape, v.role);
  }
  absl::StatusOr<onnx::ModelProto> model =
      ExportOnnx(arch, missing, t.params.data(), t.net->state_layout(), t.state.data());
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(model.status().message(), HasSubstr("Conv2d_3_pointwise/BatchNorm/beta"));

  // Layouts of a wider network do not fit this architecture.
  MobileNetConfig wider = SmallConfig();
  wider.alpha = 0.5f;
  absl::StatusOr<Architecture> wide_arch = BuildArchitecture(wider);
  ASSERT_TRUE(wide_arch.ok());
  const ParameterLayout wide_params = BuildParameterLayout(*wide_arch);
  const ParameterLayout wide_state = BuildStateLayout(*wide_arch);
  std::vector<float> wide_buffer(std::max(wide_params.total_size(), wide_state.total_size()));
  model = ExportOnnx(arch, wide_params, wide_buffer.data(), wide_state, wide_buffer.data());
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("MobilenetV1/Conv2d_0/weights"));

  model =
      ExportOnnx(arch, t.net->parameter_layout(), nullptr, t.net->state_layout(), t.state.data());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(OnnxExportTest, WriteOnnxRoundTripsAndNamesTheFileOnError) {
  const TrainedNet t = MakeNet(SmallConfig(), 7);
  absl::StatusOr<onnx::ModelProto> model = Export(t);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::string path = Path("m.onnx");
  ASSERT_TRUE(WriteOnnx(path, *model).ok());
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  onnx::ModelProto read;
  ASSERT_TRUE(read.ParseFromString(bytes));
  EXPECT_EQ(read.SerializeAsString(), model->SerializeAsString());

  const std::string bad = Path("no/such/dir/m.onnx");
  absl::Status status = WriteOnnx(bad, *model);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr(bad));
}

TEST_F(OnnxExportTest, ClassNamesTravelInTheMetadataAndOnnxReadsThem) {
  const TrainedNet t = MakeNet(SmallConfig(), 7);
  absl::StatusOr<onnx::ModelProto> model = Export(t);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Bär"};
  EXPECT_EQ(SetOnnxClassNames({"a", "b"}, 10, *model).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(
      SetOnnxClassNames({"old", "b", "c", "d", "e", "f", "g", "h", "i", "j"}, 10, *model).ok());
  ASSERT_TRUE(SetOnnxClassNames(names, 10, *model).ok());  // replaces, never duplicates
  int entries = 0;
  for (const onnx::StringStringEntryProto& p : model->metadata_props()) {
    if (p.key() != "class_names") continue;
    ++entries;
    EXPECT_EQ(p.value(),
              "T-shirt/top\nTrouser\nPullover\nDress\nCoat\nSandal\nShirt\nSneaker\nBag\n"
              "Bär");
  }
  EXPECT_EQ(entries, 1);
  try {
    onnx::checker::check_model(*model);
  } catch (const std::exception& e) {
    FAIL() << "ONNX validation failed: " << e.what();
  }
  if (!HavePythonOnnx()) GTEST_SKIP() << kPython << " with numpy and onnx not available";
  const std::string path = Path("named.onnx");
  ASSERT_TRUE(WriteOnnx(path, *model).ok());
  const std::string out = Path("names.txt");
  const std::string command = std::string(kPython) +
                              " -c 'import onnx, sys; m = onnx.load(sys.argv[1]); "
                              "open(sys.argv[2], \"w\", encoding=\"utf-8\").write("
                              "{p.key: p.value for p in m.metadata_props}[\"class_names\"])' " +
                              path + " " + out;
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream in(out, std::ios::binary);
  const std::string read((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(ParseClassNames(read), names);

  ASSERT_TRUE(SetOnnxClassNames({}, 10, *model).ok());  // unknown: no entry
  for (const onnx::StringStringEntryProto& p : model->metadata_props()) {
    EXPECT_NE(p.key(), "class_names");
  }
}

// NHWC [n, r, r, c] -> NCHW [n, c, r, r].
std::vector<float> ToNchw(const std::vector<float>& nhwc, int n, int r, int c) {
  std::vector<float> nchw(nhwc.size());
  for (int b = 0; b < n; ++b) {
    for (int y = 0; y < r; ++y) {
      for (int x = 0; x < r; ++x) {
        for (int ch = 0; ch < c; ++ch) {
          nchw[((int64_t{b} * c + ch) * r + y) * r + x] =
              nhwc[((int64_t{b} * r + y) * r + x) * c + ch];
        }
      }
    }
  }
  return nchw;
}

// Exports, runs tests/onnx_reference.py (numpy, independent of our kernels) on the same
// images, and compares with MobileNetV1::Infer.
void ExpectReferenceMatchesInfer(const MobileNetConfig& config, int batch, const std::string& dir) {
  SCOPED_TRACE(::testing::Message()
               << "alpha " << config.alpha << " resolution " << config.resolution << " channels "
               << config.input_channels << " shallow " << config.shallow);
  TrainedNet t = MakeNet(config, 11);
  absl::StatusOr<onnx::ModelProto> model = Export(t);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::string model_path = dir + "/model.onnx";
  const std::string input_path = dir + "/input.npy";
  const std::string logits_path = dir + "/logits.npy";
  const std::string json_path = dir + "/logits.json";
  ASSERT_TRUE(WriteOnnx(model_path, *model).ok());

  const int r = config.resolution, c = config.input_channels, k = config.num_classes;
  const std::vector<float> images = RandomTensor(int64_t{batch} * r * r * c, 99);
  ASSERT_TRUE(WriteNpy(input_path, {batch, c, r, r}, ToNchw(images, batch, r, c)).ok());
  std::vector<float> expected(int64_t{batch} * k);
  t.net->Infer(t.params.data(), t.state.data(), images.data(), batch, expected.data());

  const std::string command = std::string(kPython) + " " + ReferenceScript() + " " + model_path +
                              " " + input_path + " --output " + logits_path + " > " + json_path;
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  absl::StatusOr<NpyArray> logits = ReadNpy(logits_path);
  ASSERT_TRUE(logits.ok()) << logits.status();
  ASSERT_THAT(logits->shape, ElementsAre(batch, k));
  std::ifstream json(json_path);
  const std::string text((std::istreambuf_iterator<char>(json)), {});
  EXPECT_EQ(text.substr(0, 2), "[[");

  float scale = 1.0f;
  for (float v : expected) scale = std::max(scale, std::abs(v));
  float spread = 0;
  for (int i = 0; i < batch * k; ++i) {
    EXPECT_NEAR(logits->data[i], expected[i], 1e-4f * scale) << "logit " << i;
    spread = std::max(spread, std::abs(expected[i] - expected[0]));
  }
  EXPECT_GT(spread, 1e-2f) << "degenerate logits would make the comparison meaningless";
}

TEST_F(OnnxExportTest, NumpyReferenceMatchesInference) {
  if (!HavePythonOnnx()) GTEST_SKIP() << kPython << " with numpy and onnx not available";
  ExpectReferenceMatchesInfer(SmallConfig(), 3, dir_);  // even sizes: asymmetric pads
  MobileNetConfig odd = SmallConfig();
  odd.resolution = 37;  // odd sizes: symmetric pads at stride 2
  odd.input_channels = 1;
  odd.shallow = true;
  ExpectReferenceMatchesInfer(odd, 2, dir_);
}

}  // namespace
}  // namespace mobilenet
