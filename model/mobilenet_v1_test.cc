#include "model/mobilenet_v1.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/initializer.h"
#include "model/layers/conv_geometry.h"
#include "model/model_description.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<MobileNetV1> MakeNet(const MobileNetConfig& config) {
  absl::StatusOr<std::unique_ptr<MobileNetV1>> net = MobileNetV1::Create(config);
  EXPECT_TRUE(net.ok()) << net.status();
  return *std::move(net);
}

MobileNetConfig SmallConfig() {
  MobileNetConfig config;
  config.alpha = 0.25f;
  config.resolution = 32;
  config.input_channels = 3;
  config.num_classes = 10;
  return config;
}

std::vector<float> RandomImages(const MobileNetConfig& c, int batch, uint32_t seed) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> images(int64_t{batch} * c.resolution * c.resolution * c.input_channels);
  for (float& v : images) v = uniform(engine);
  return images;
}

std::vector<int> RandomLabels(const MobileNetConfig& c, int batch, uint32_t seed) {
  std::mt19937 engine(seed);
  std::vector<int> labels(batch);
  for (int& l : labels) l = static_cast<int>(engine() % c.num_classes);
  return labels;
}

// Mean softmax cross-entropy with label smoothing, in double, from float logits.
double CrossEntropy(absl::Span<const float> logits, const std::vector<int>& labels, int k,
                    double smoothing) {
  const int n = static_cast<int>(labels.size());
  double total = 0;
  for (int i = 0; i < n; ++i) {
    const float* row = logits.data() + int64_t{i} * k;
    const double max_logit = *std::max_element(row, row + k);
    double sum_exp = 0;
    for (int j = 0; j < k; ++j) sum_exp += std::exp(row[j] - max_logit);
    const double log_sum_exp = max_logit + std::log(sum_exp);
    for (int j = 0; j < k; ++j) {
      const double target = (j == labels[i] ? 1.0 - smoothing : 0.0) + smoothing / k;
      total -= target * (row[j] - log_sum_exp);
    }
  }
  return total / n;
}

// A double-precision training-mode forward pass written as plain loops, independent of the
// kernels: the reference the float network is checked against. It keeps each layer's input
// at a base point, so a loss after changing one layer's tensors is recomputed from that
// layer on, and it records on which side of ReLU6's kinks (0 and 6) every batch-norm output
// lies.
class ReferenceNetwork {
 public:
  ReferenceNetwork(const MobileNetV1& net, const std::vector<float>& images,
                   std::vector<int> labels, double smoothing)
      : arch_(net.architecture()),
        layout_(net.parameter_layout()),
        images_(images.begin(), images.end()),
        labels_(std::move(labels)),
        smoothing_(smoothing) {}

  // Evaluates the loss at `params` and makes it the base point. Logits into *logits.
  double SetBasePoint(const std::vector<double>& params, std::vector<double>* logits) {
    const int num_convs = static_cast<int>(arch_.convs.size());
    inputs_.assign(num_convs + 1, {});
    regions_.assign(num_convs, {});
    inputs_[0] = images_;
    for (int l = 0; l < num_convs; ++l) {
      inputs_[l + 1] = ConvBatchNormRelu6(params, l, inputs_[l], &regions_[l]);
    }
    return Head(params, inputs_[num_convs], logits);
  }

  // The loss at `params`, which may differ from the base point only in the tensors of conv
  // `layer` and later ones (the classifier counts as layer convs.size()). *smooth is false
  // when some ReLU6 input lies on another side of 0 or 6 than at the base point.
  double LossFrom(const std::vector<double>& params, int layer, bool* smooth) const {
    const int num_convs = static_cast<int>(arch_.convs.size());
    std::vector<double> x = inputs_[layer];
    std::vector<uint8_t> regions;
    *smooth = true;
    for (int l = layer; l < num_convs; ++l) {
      x = ConvBatchNormRelu6(params, l, x, &regions);
      *smooth = *smooth && regions == regions_[l];
    }
    std::vector<double> logits;
    return Head(params, x, &logits);
  }

  // The layer (as LossFrom counts) that a tensor of the parameter layout belongs to.
  int LayerOf(const std::string& tensor_name) const {
    for (size_t l = 0; l < arch_.convs.size(); ++l) {
      if (tensor_name.rfind(arch_.convs[l].name + "/", 0) == 0) return static_cast<int>(l);
    }
    return static_cast<int>(arch_.convs.size());
  }

 private:
  std::vector<double> ConvBatchNormRelu6(const std::vector<double>& params, int layer,
                                         const std::vector<double>& x,
                                         std::vector<uint8_t>* regions) const {
    const ConvLayerSpec& c = arch_.convs[layer];
    const double* w = params.data() + Offset(c.name + (c.kind == ConvKind::kDepthwise
                                                           ? "/depthwise_weights"
                                                           : "/weights"));
    std::vector<double> z = Convolve(c, batch(), x, w);
    regions->clear();
    BatchNormRelu6(c, batch(), params.data() + Offset(c.name + "/BatchNorm/gamma"),
                   params.data() + Offset(c.name + "/BatchNorm/beta"), z, regions);
    return z;
  }

  // Global average pooling, the classifier and the mean cross-entropy.
  double Head(const std::vector<double>& params, const std::vector<double>& x,
              std::vector<double>* logits) const {
    const ConvLayerSpec& last = arch_.convs.back();
    const int features = arch_.classifier_in, classes = arch_.classifier_out;
    const int pixels = last.out_h * last.out_w;
    const double* fc = params.data() + Offset(arch_.classifier_name + "/weights");
    const double* bias = params.data() + Offset(arch_.classifier_name + "/biases");
    logits->assign(static_cast<size_t>(batch()) * classes, 0.0);
    double loss = 0;
    for (int n = 0; n < batch(); ++n) {
      double* row = logits->data() + static_cast<size_t>(n) * classes;
      for (int f = 0; f < features; ++f) {
        double pooled = 0;
        for (int p = 0; p < pixels; ++p) pooled += x[(int64_t{n} * pixels + p) * features + f];
        pooled /= pixels;
        for (int k = 0; k < classes; ++k) row[k] += pooled * fc[int64_t{f} * classes + k];
      }
      double max_logit = -1e300;
      for (int k = 0; k < classes; ++k) {
        row[k] += bias[k];
        max_logit = std::max(max_logit, row[k]);
      }
      double sum_exp = 0;
      for (int k = 0; k < classes; ++k) sum_exp += std::exp(row[k] - max_logit);
      const double log_sum_exp = max_logit + std::log(sum_exp);
      for (int k = 0; k < classes; ++k) {
        const double target =
            (k == labels_[n] ? 1.0 - smoothing_ : 0.0) + smoothing_ / classes;
        loss -= target * (row[k] - log_sum_exp);
      }
    }
    return loss / batch();
  }

  int batch() const { return static_cast<int>(labels_.size()); }
 private:
  int64_t Offset(const std::string& name) const { return (*layout_.Find(name))->offset; }

  static std::vector<double> Convolve(const ConvLayerSpec& c, int batch,
                                      const std::vector<double>& x, const double* w) {
    const ConvGeometry g = ConvGeometry::Same(batch, c.in_h, c.in_w, c.in_channels,
                                              c.out_channels, c.kernel, c.stride);
    std::vector<double> z(g.output_size(), 0.0);
    for (int n = 0; n < batch; ++n) {
      for (int oy = 0; oy < g.out_h; ++oy) {
        for (int ox = 0; ox < g.out_w; ++ox) {
          double* out = &z[((int64_t{n} * g.out_h + oy) * g.out_w + ox) * g.out_channels];
          for (int ky = 0; ky < g.kernel; ++ky) {
            const int iy = oy * g.stride + ky - g.pad_top;
            if (iy < 0 || iy >= g.in_h) continue;
            for (int kx = 0; kx < g.kernel; ++kx) {
              const int ix = ox * g.stride + kx - g.pad_left;
              if (ix < 0 || ix >= g.in_w) continue;
              const double* in = &x[((int64_t{n} * g.in_h + iy) * g.in_w + ix) * g.in_channels];
              const int tap = ky * g.kernel + kx;
              if (c.kind == ConvKind::kDepthwise) {
                for (int ch = 0; ch < g.in_channels; ++ch) {
                  out[ch] += in[ch] * w[int64_t{tap} * g.in_channels + ch];
                }
              } else {
                for (int ci = 0; ci < g.in_channels; ++ci) {
                  const double* wr = w + (int64_t{tap} * g.in_channels + ci) * g.out_channels;
                  for (int co = 0; co < g.out_channels; ++co) out[co] += in[ci] * wr[co];
                }
              }
            }
          }
        }
      }
    }
    return z;
  }

  static void BatchNormRelu6(const ConvLayerSpec& c, int batch, const double* gamma,
                             const double* beta, std::vector<double>& z,
                             std::vector<uint8_t>* regions) {
    const int channels = c.out_channels;
    const int64_t rows = int64_t{batch} * c.out_h * c.out_w;
    std::vector<double> mean(channels, 0.0), variance(channels, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int ch = 0; ch < channels; ++ch) mean[ch] += z[r * channels + ch];
    }
    for (double& m : mean) m /= rows;
    for (int64_t r = 0; r < rows; ++r) {
      for (int ch = 0; ch < channels; ++ch) {
        const double d = z[r * channels + ch] - mean[ch];
        variance[ch] += d * d;
      }
    }
    for (double& v : variance) v /= rows;
    for (int64_t r = 0; r < rows; ++r) {
      for (int ch = 0; ch < channels; ++ch) {
        double& v = z[r * channels + ch];
        const double y = gamma[ch] * (v - mean[ch]) / std::sqrt(variance[ch] + kBatchNormEpsilon) +
                         beta[ch];
        regions->push_back(y <= 0 ? 0 : (y >= 6 ? 2 : 1));
        v = std::min(std::max(y, 0.0), 6.0);
      }
    }
  }

  const Architecture& arch_;
  const ParameterLayout& layout_;
  const std::vector<double> images_;
  const std::vector<int> labels_;
  const double smoothing_;
  std::vector<std::vector<double>> inputs_;     // per conv, then the head's input
  std::vector<std::vector<uint8_t>> regions_;  // per conv
};

TEST(MobileNetV1Test, LayoutsUseTfSlimNamesAndShapes) {
  std::unique_ptr<MobileNetV1> net = MakeNet(MobileNetConfig{});
  const ParameterLayout& p = net->parameter_layout();
  auto expect_view = [&](const ParameterLayout& layout, const std::string& name,
                         std::vector<int64_t> shape, TensorRole role) {
    absl::StatusOr<const TensorView*> view = layout.Find(name);
    ASSERT_TRUE(view.ok()) << view.status();
    EXPECT_EQ((*view)->shape, shape) << name;
    EXPECT_EQ((*view)->role, role) << name;
  };
  expect_view(p, "MobilenetV1/Conv2d_0/weights", {3, 3, 3, 32}, TensorRole::kConvWeights);
  expect_view(p, "MobilenetV1/Conv2d_0/BatchNorm/gamma", {32}, TensorRole::kBatchNormGamma);
  expect_view(p, "MobilenetV1/Conv2d_0/BatchNorm/beta", {32}, TensorRole::kBatchNormBeta);
  expect_view(p, "MobilenetV1/Conv2d_1_depthwise/depthwise_weights", {3, 3, 32, 1},
              TensorRole::kDepthwiseWeights);
  expect_view(p, "MobilenetV1/Conv2d_13_pointwise/weights", {1, 1, 1024, 1024},
              TensorRole::kConvWeights);
  expect_view(p, "MobilenetV1/Logits/Conv2d_1c_1x1/weights", {1, 1, 1024, 1000},
              TensorRole::kFullyConnectedWeights);
  expect_view(p, "MobilenetV1/Logits/Conv2d_1c_1x1/biases", {1000},
              TensorRole::kFullyConnectedBias);
  expect_view(net->state_layout(), "MobilenetV1/Conv2d_13_pointwise/BatchNorm/moving_variance",
              {1024}, TensorRole::kMovingVariance);
  EXPECT_FALSE(p.Find("MobilenetV1/Conv2d_0/BatchNorm/moving_mean").ok());

  // Every trainable float is a weight the paper counts, a batch-norm scale/offset or the
  // classifier bias.
  const ModelDescription d = Describe(net->architecture());
  EXPECT_EQ(p.total_size(), d.params + d.batch_norm_params + d.classifier_bias);
  EXPECT_EQ(net->state_layout().total_size(), d.batch_norm_params);
}

TEST(MobileNetV1Test, CreateRejectsBadConfigs) {
  MobileNetConfig config = SmallConfig();
  config.num_classes = 0;
  absl::StatusOr<std::unique_ptr<MobileNetV1>> net = MobileNetV1::Create(config);
  ASSERT_FALSE(net.ok());
  EXPECT_EQ(net.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(net.status().message()), HasSubstr("num_classes"));
}

// Runs one TrainStep and one Infer on random data; everything finite and shaped right.
void ExpectRuns(const MobileNetConfig& config, int batch) {
  SCOPED_TRACE(testing::Message() << "alpha " << config.alpha << " resolution "
                                  << config.resolution << " channels "
                                  << config.input_channels << " classes "
                                  << config.num_classes << " shallow " << config.shallow);
  std::unique_ptr<MobileNetV1> net = MakeNet(config);
  std::vector<float> params(net->parameter_layout().total_size());
  InitializeAll(net->parameter_layout(), 1, params.data());
  std::vector<float> state(net->state_layout().total_size());
  InitializeAll(net->state_layout(), 1, state.data());
  const std::vector<float> images = RandomImages(config, batch, 2);
  const std::vector<int> labels = RandomLabels(config, batch, 3);
  std::vector<float> gradients(params.size());
  const TrainStepResult r =
      net->TrainStep(params.data(), images.data(), labels.data(), batch, 0.1f,
                     gradients.data(), nullptr);
  EXPECT_TRUE(std::isfinite(r.loss));
  EXPECT_GT(r.loss, 0.0f);
  EXPECT_GE(r.correct, 0);
  EXPECT_LE(r.correct, batch);
  EXPECT_EQ(net->last_logits().size(), static_cast<size_t>(batch) * config.num_classes);
  double gradient_norm = 0;
  for (float g : gradients) {
    ASSERT_TRUE(std::isfinite(g));
    gradient_norm += double{g} * g;
  }
  EXPECT_GT(gradient_norm, 0.0);
  std::vector<float> logits(static_cast<size_t>(batch) * config.num_classes + 1, 12345.0f);
  net->Infer(params.data(), state.data(), images.data(), batch, logits.data());
  for (size_t i = 0; i + 1 < logits.size(); ++i) ASSERT_TRUE(std::isfinite(logits[i])) << i;
  EXPECT_EQ(logits.back(), 12345.0f) << "Infer wrote past [batch, num_classes]";
}

TEST(MobileNetV1Test, RunsForVariousConfigs) {
  MobileNetConfig c = SmallConfig();
  ExpectRuns(c, 2);
  c.resolution = 28;
  c.input_channels = 1;
  ExpectRuns(c, 3);
  c.resolution = 17;  // odd sizes all the way down
  c.alpha = 0.3f;
  c.num_classes = 2;
  ExpectRuns(c, 1);
  c = SmallConfig();
  c.resolution = 40;
  c.input_channels = 4;
  c.num_classes = 37;
  c.alpha = 0.5f;
  ExpectRuns(c, 2);
}

TEST(MobileNetV1Test, ShallowVariantHasNo14x14x512Blocks) {
  MobileNetConfig c = SmallConfig();
  c.shallow = true;
  std::unique_ptr<MobileNetV1> net = MakeNet(c);
  EXPECT_EQ(net->architecture().convs.size(), 17u);
  EXPECT_FALSE(
      net->parameter_layout().Find("MobilenetV1/Conv2d_9_pointwise/weights").ok());
  EXPECT_TRUE(
      net->parameter_layout().Find("MobilenetV1/Conv2d_12_depthwise/depthwise_weights").ok());
  ExpectRuns(c, 2);
}

TEST(MobileNetV1Test, TrainStepOverwritesGradientsAndIsDeterministic) {
  const MobileNetConfig c = SmallConfig();
  std::unique_ptr<MobileNetV1> net = MakeNet(c);
  std::vector<float> params(net->parameter_layout().total_size());
  InitializeAll(net->parameter_layout(), 5, params.data());
  const std::vector<float> images = RandomImages(c, 3, 6);
  const std::vector<int> labels = RandomLabels(c, 3, 7);
  std::vector<float> first(params.size(), 0.0f), second(params.size(), 1e6f);
  const TrainStepResult r1 = net->TrainStep(params.data(), images.data(), labels.data(), 3,
                                            0.0f, first.data(), nullptr);
  const TrainStepResult r2 = net->TrainStep(params.data(), images.data(), labels.data(), 3,
                                            0.0f, second.data(), nullptr);
  EXPECT_EQ(r1.loss, r2.loss);
  EXPECT_EQ(first, second);
  // The loss reported is the cross-entropy of the logits.
  EXPECT_NEAR(r1.loss, CrossEntropy(net->last_logits(), labels, c.num_classes, 0.0),
              1e-5 * r1.loss);
}

TEST(MobileNetV1Test, WorkspaceGrowsOnlyWithTheBatch) {
  const MobileNetConfig c = SmallConfig();
  std::unique_ptr<MobileNetV1> net = MakeNet(c);
  std::vector<float> params(net->parameter_layout().total_size());
  InitializeAll(net->parameter_layout(), 5, params.data());
  std::vector<float> gradients(params.size());
  auto step = [&](int batch) {
    const std::vector<float> images = RandomImages(c, batch, batch);
    const std::vector<int> labels = RandomLabels(c, batch, batch);
    net->TrainStep(params.data(), images.data(), labels.data(), batch, 0.0f, gradients.data(),
                   nullptr);
    return net->workspace_bytes();
  };
  const size_t at4 = step(4);
  EXPECT_GT(at4, 0u);
  EXPECT_EQ(step(2), at4);
  EXPECT_EQ(step(4), at4);
  const size_t at8 = step(8);
  EXPECT_GT(at8, at4);
  EXPECT_LT(at8, 2 * at4 + 4096);

  // z and a per conv, two gradient buffers of the largest activation, small head buffers.
  int64_t activations = 0, largest = 0;
  for (const ConvLayerSpec& s : net->architecture().convs) {
    const int64_t n = int64_t{s.out_h} * s.out_w * s.out_channels;
    activations += n;
    largest = std::max(largest, n);
  }
  const int64_t expected_floats = 8 * (2 * activations + 2 * largest);
  EXPECT_GE(at8, expected_floats * sizeof(float));
  EXPECT_LT(at8, expected_floats * sizeof(float) * 1.05 + 65536);
}

// Inference with moving statistics equal to a batch's statistics is the training-mode
// forward pass of that batch.
TEST(MobileNetV1Test, InferWithBatchStatisticsMatchesTrainingForward) {
  MobileNetConfig c = SmallConfig();
  c.resolution = 48;
  const int batch = 4;
  std::unique_ptr<MobileNetV1> net = MakeNet(c);
  std::vector<float> params(net->parameter_layout().total_size());
  InitializeAll(net->parameter_layout(), 9, params.data());
  // Non-trivial batch-norm parameters.
  std::mt19937 engine(10);
  std::uniform_real_distribution<float> uniform(-0.3f, 0.3f);
  for (const TensorView& v : net->parameter_layout().views()) {
    if (v.role == TensorRole::kBatchNormGamma || v.role == TensorRole::kBatchNormBeta) {
      for (int64_t i = 0; i < v.size; ++i) params[v.offset + i] += uniform(engine);
    }
  }
  const std::vector<float> images = RandomImages(c, batch, 11);
  const std::vector<int> labels = RandomLabels(c, batch, 12);
  std::vector<float> gradients(params.size());
  std::vector<float> stats(net->state_layout().total_size(), -1.0f);
  net->TrainStep(params.data(), images.data(), labels.data(), batch, 0.0f, gradients.data(),
                 stats.data());
  for (const TensorView& v : net->state_layout().views()) {
    for (int64_t i = 0; i < v.size; ++i) {
      if (v.role == TensorRole::kMovingVariance) {
        ASSERT_GE(stats[v.offset + i], 0.0f) << v.name;
      }
    }
  }
  const std::vector<float> trained(net->last_logits().begin(), net->last_logits().end());
  std::vector<float> inferred(trained.size());
  net->Infer(params.data(), stats.data(), images.data(), batch, inferred.data());
  double max_logit = 0;
  for (float v : trained) max_logit = std::max(max_logit, std::fabs(double{v}));
  ASSERT_GT(max_logit, 0.1);
  for (size_t i = 0; i < trained.size(); ++i) {
    EXPECT_NEAR(inferred[i], trained[i], 1e-3 * max_logit) << i;
  }
}

// Central differences of the whole network's loss, computed by ReferenceNetwork in double,
// against TrainStep's float gradients, for a sample of elements of every parameter tensor
// (the two largest gradient entries of each tensor and four spread evenly).
//
// Why double: this deep batch-normalized network has large, sensitive gradients at
// initialization (early-layer entries of 10-50), and a float forward pass puts rounding
// noise of ~1e-6 on the loss, so float finite differences are either noisy (small steps) or
// cross ReLU6 kinks (large steps). In double the step can be 1e-6 of each tensor's scale:
// truncation and rounding errors are then far below the tolerance, which reflects only the
// float arithmetic of the analytic gradient.
//
// Kinks: ReLU6 makes the loss piecewise smooth. The reference records on which side of 0
// and 6 every batch-norm output lies; where the +h or -h point differs from the base point
// the difference straddles a kink and the element is skipped (at this step it is rare; at
// most 2% may be skipped).
//
// Batch 4, not 2: at 32x32 the last four convolutions run at 1x1, so their batch norm
// normalizes over `batch` values per channel. With two values the outputs are
// +-d / sqrt(d^2 + eps): flat for most channels, and for the few with |d| near sqrt(eps)
// steep with gain up to 1 / sqrt(eps) ~ 32 per layer. The gradients of every layer below
// then hinge on float rounding in a handful of near-degenerate channels; at batch 2 the
// float gradients measured 2-3% off the double reference everywhere below Conv2d_12, a
// conditioning effect (batch 2 at 64x64, where those layers see 8 values, passes with a
// wide margin). Batch 4 keeps them well conditioned at a quarter of that cost.
TEST(MobileNetV1Test, WholeNetworkGradientMatchesFiniteDifferences) {
  const MobileNetConfig c = SmallConfig();
  const int batch = 4;
  const double smoothing = 0.1;
  std::unique_ptr<MobileNetV1> net = MakeNet(c);
  const ParameterLayout& layout = net->parameter_layout();
  std::vector<float> params(layout.total_size());
  InitializeAll(layout, 21, params.data());
  // Move batch norm and the bias off their initial values so their gradients are generic.
  std::mt19937 engine(22);
  std::uniform_real_distribution<float> uniform(-0.2f, 0.2f);
  for (const TensorView& v : layout.views()) {
    if (v.role == TensorRole::kBatchNormGamma || v.role == TensorRole::kBatchNormBeta ||
        v.role == TensorRole::kFullyConnectedBias) {
      for (int64_t i = 0; i < v.size; ++i) params[v.offset + i] += uniform(engine);
    }
  }
  const std::vector<float> images = RandomImages(c, batch, 23);
  const std::vector<int> labels = RandomLabels(c, batch, 24);
  std::vector<float> analytic(params.size());
  const TrainStepResult result =
      net->TrainStep(params.data(), images.data(), labels.data(), batch,
                     static_cast<float>(smoothing), analytic.data(), nullptr);

  ReferenceNetwork reference(*net, images, labels, smoothing);
  std::vector<double> point(params.begin(), params.end());
  std::vector<double> logits;
  const double base_loss = reference.SetBasePoint(point, &logits);
  // The forward passes agree.
  EXPECT_NEAR(result.loss, base_loss, 1e-4 * base_loss);
  for (size_t i = 0; i < logits.size(); ++i) {
    EXPECT_NEAR(net->last_logits()[i], logits[i], 1e-3 * (1 + std::fabs(logits[i]))) << i;
  }

  int checked = 0, skipped = 0, failures = 0;
  double worst = 0;  // largest error as a share of the allowed error
  for (const TensorView& v : layout.views()) {
    double scale = 0, largest_gradient = 0;
    for (int64_t i = 0; i < v.size; ++i) {
      scale = std::max(scale, std::fabs(point[v.offset + i]));
      largest_gradient = std::max(largest_gradient, std::fabs(double{analytic[v.offset + i]}));
    }
    const double step = 1e-6 * std::max(scale, 0.1);
    std::vector<int64_t> order(v.size);
    for (int64_t i = 0; i < v.size; ++i) order[i] = i;
    const int64_t top = std::min<int64_t>(2, v.size);
    std::partial_sort(order.begin(), order.begin() + top, order.end(), [&](int64_t a, int64_t b) {
      return std::fabs(analytic[v.offset + a]) > std::fabs(analytic[v.offset + b]);
    });
    std::vector<int64_t> picks(order.begin(), order.begin() + top);
    for (int j = 0; j < 4; ++j) picks.push_back((2 * j + 1) * v.size / 8);
    std::sort(picks.begin(), picks.end());
    picks.erase(std::unique(picks.begin(), picks.end()), picks.end());

    const int layer = reference.LayerOf(v.name);
    for (int64_t i : picks) {
      double& p = point[v.offset + i];
      const double saved = p;
      bool plus_smooth, minus_smooth;
      p = saved + step;
      const double plus = reference.LossFrom(point, layer, &plus_smooth);
      p = saved - step;
      const double minus = reference.LossFrom(point, layer, &minus_smooth);
      p = saved;
      if (!plus_smooth || !minus_smooth) {
        ++skipped;
        continue;
      }
      ++checked;
      const double numeric = (plus - minus) / (2 * step);
      const double a = analytic[v.offset + i];
      // 1% of the entry, with a floor at 0.1% of the tensor's largest entry: small entries
      // come out of batch norm's backward as differences of large terms, so they carry the
      // float rounding of the large ones (measured up to ~0.02% of the largest).
      const double allowed = 1e-2 * std::max(std::fabs(numeric), 0.1 * largest_gradient);
      worst = std::max(worst, std::fabs(a - numeric) / allowed);
      if (std::fabs(a - numeric) > allowed && ++failures <= 10) {
        ADD_FAILURE() << v.name << "[" << i << "]: analytic " << a << " numeric " << numeric;
      }
    }
  }
  EXPECT_EQ(failures, 0);
  EXPECT_GT(checked, 400);
  EXPECT_LE(skipped, (checked + skipped) / 50) << "too many finite differences cross a kink";
  std::printf("checked %d elements, skipped %d at ReLU6 kinks; worst error %.2f of allowed\n",
              checked, skipped, worst);
}

}  // namespace
}  // namespace mobilenet
