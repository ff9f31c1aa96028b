#include "model/mobilenet_v1.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/check.h"
#include "common/status_macros.h"
#include "model/layers/batch_norm.h"
#include "model/layers/conv_geometry.h"
#include "model/layers/depthwise_conv.h"
#include "model/layers/full_conv.h"
#include "model/layers/fully_connected.h"
#include "model/layers/global_avg_pool.h"
#include "model/layers/pointwise_conv.h"
#include "model/layers/softmax_cross_entropy.h"

namespace mobilenet {
namespace {

int64_t OutputPerImage(const ConvLayerSpec& c) {
  return int64_t{c.out_h} * c.out_w * c.out_channels;
}

int64_t OutputRows(const ConvLayerSpec& c, int batch) {
  return int64_t{batch} * c.out_h * c.out_w;
}

ConvGeometry Geometry(const ConvLayerSpec& c, int batch) {
  return ConvGeometry::Same(batch, c.in_h, c.in_w, c.in_channels, c.out_channels, c.kernel,
                            c.stride);
}

// Replaces `v` by `n` zeros, releasing the old storage first so that growing never holds
// both the old and the new buffer.
void Reallocate(std::vector<float>& v, int64_t n) {
  std::vector<float>().swap(v);
  v.resize(static_cast<size_t>(n));
}

size_t Bytes(const std::vector<float>& v) { return v.capacity() * sizeof(float); }

}  // namespace

ParameterLayout BuildParameterLayout(const Architecture& arch) {
  ParameterLayout layout;
  for (const ConvLayerSpec& c : arch.convs) {
    const int64_t k = c.kernel;
    if (c.kind == ConvKind::kDepthwise) {
      layout.Add(c.name + "/depthwise_weights", {k, k, c.in_channels, 1},
                 TensorRole::kDepthwiseWeights);
    } else {
      layout.Add(c.name + "/weights", {k, k, c.in_channels, c.out_channels},
                 TensorRole::kConvWeights);
    }
    layout.Add(c.name + "/BatchNorm/gamma", {c.out_channels}, TensorRole::kBatchNormGamma);
    layout.Add(c.name + "/BatchNorm/beta", {c.out_channels}, TensorRole::kBatchNormBeta);
  }
  layout.Add(arch.classifier_name + "/weights", {1, 1, arch.classifier_in, arch.classifier_out},
             TensorRole::kFullyConnectedWeights);
  layout.Add(arch.classifier_name + "/biases", {arch.classifier_out},
             TensorRole::kFullyConnectedBias);
  return layout;
}

ParameterLayout BuildStateLayout(const Architecture& arch) {
  ParameterLayout layout;
  for (const ConvLayerSpec& c : arch.convs) {
    layout.Add(c.name + "/BatchNorm/moving_mean", {c.out_channels}, TensorRole::kMovingMean);
    layout.Add(c.name + "/BatchNorm/moving_variance", {c.out_channels},
               TensorRole::kMovingVariance);
  }
  return layout;
}

absl::StatusOr<std::unique_ptr<MobileNetV1>> MobileNetV1::Create(
    const MobileNetConfig& config) {
  ASSIGN_OR_RETURN(Architecture arch, BuildArchitecture(config));
  return std::unique_ptr<MobileNetV1>(new MobileNetV1(std::move(arch)));
}

MobileNetV1::MobileNetV1(Architecture arch)
    : arch_(std::move(arch)),
      params_(BuildParameterLayout(arch_)),
      state_(BuildStateLayout(arch_)) {
  auto offset = [](const ParameterLayout& layout, const std::string& name) {
    absl::StatusOr<const TensorView*> view = layout.Find(name);
    MOBILENET_CHECK(view.ok());
    return (*view)->offset;
  };
  for (const ConvLayerSpec& c : arch_.convs) {
    ConvOffsets o;
    o.weights = offset(params_, c.name + (c.kind == ConvKind::kDepthwise ? "/depthwise_weights"
                                                                          : "/weights"));
    o.gamma = offset(params_, c.name + "/BatchNorm/gamma");
    o.beta = offset(params_, c.name + "/BatchNorm/beta");
    o.mean = offset(state_, c.name + "/BatchNorm/moving_mean");
    o.variance = offset(state_, c.name + "/BatchNorm/moving_variance");
    offsets_.push_back(o);
    max_activation_per_image_ = std::max(max_activation_per_image_, OutputPerImage(c));
  }
  classifier_weights_ = offset(params_, arch_.classifier_name + "/weights");
  classifier_bias_ = offset(params_, arch_.classifier_name + "/biases");
}

void MobileNetV1::EnsureTrainingWorkspace(int batch) {
  EnsureScratch(batch);
  if (batch <= training_batch_) return;
  z_.resize(arch_.convs.size());
  a_.resize(arch_.convs.size());
  for (size_t l = 0; l < arch_.convs.size(); ++l) {
    const int64_t n = batch * OutputPerImage(arch_.convs[l]);
    Reallocate(z_[l], n);
    Reallocate(a_[l], n);
  }
  Reallocate(batch_stats_, state_.total_size());
  training_batch_ = batch;
}

void MobileNetV1::EnsureScratch(int batch) {
  if (batch <= scratch_batch_) return;
  Reallocate(ping_, batch * max_activation_per_image_);
  Reallocate(pong_, batch * max_activation_per_image_);
  Reallocate(pooled_, int64_t{batch} * arch_.classifier_in);
  Reallocate(d_pooled_, int64_t{batch} * arch_.classifier_in);
  Reallocate(logits_, int64_t{batch} * arch_.classifier_out);
  Reallocate(d_logits_, int64_t{batch} * arch_.classifier_out);
  scratch_batch_ = batch;
}

size_t MobileNetV1::workspace_bytes() const {
  size_t bytes = 0;
  for (const auto& v : z_) bytes += Bytes(v);
  for (const auto& v : a_) bytes += Bytes(v);
  for (const auto* v : {&batch_stats_, &ping_, &pong_, &pooled_, &d_pooled_, &logits_,
                        &d_logits_}) {
    bytes += Bytes(*v);
  }
  return bytes;
}

void MobileNetV1::ConvForward(int layer, int batch, const float* params, const float* input,
                              float* output) const {
  const ConvLayerSpec& c = arch_.convs[layer];
  const float* weights = params + offsets_[layer].weights;
  switch (c.kind) {
    case ConvKind::kFull:
      FullConvForward(Geometry(c, batch), input, weights, output);
      return;
    case ConvKind::kDepthwise:
      DepthwiseConvForward(Geometry(c, batch), input, weights, output);
      return;
    case ConvKind::kPointwise:
      PointwiseConvForward(OutputRows(c, batch), c.in_channels, c.out_channels, input, weights,
                           output);
      return;
  }
}

void MobileNetV1::ConvBackward(int layer, int batch, const float* params, const float* input,
                               const float* d_output, float* d_input,
                               float* gradients) const {
  const ConvLayerSpec& c = arch_.convs[layer];
  const float* weights = params + offsets_[layer].weights;
  float* d_weights = gradients + offsets_[layer].weights;
  switch (c.kind) {
    case ConvKind::kFull:
      FullConvBackward(Geometry(c, batch), input, weights, d_output, d_input, d_weights);
      return;
    case ConvKind::kDepthwise:
      DepthwiseConvBackward(Geometry(c, batch), input, weights, d_output, d_input, d_weights);
      return;
    case ConvKind::kPointwise:
      PointwiseConvBackward(OutputRows(c, batch), c.in_channels, c.out_channels, input,
                            weights, d_output, d_input, d_weights);
      return;
  }
}

TrainStepResult MobileNetV1::TrainStep(const float* params, const float* images,
                                       const int* labels, int batch, float label_smoothing,
                                       float* gradients, float* batch_stats) {
  MOBILENET_CHECK(batch >= 1);
  MOBILENET_CHECK(label_smoothing >= 0.0f && label_smoothing <= 1.0f);
  const int classes = arch_.classifier_out;
  EnsureTrainingWorkspace(batch);
  last_batch_ = batch;
  std::memset(gradients, 0, sizeof(float) * params_.total_size());
  const int num_convs = static_cast<int>(arch_.convs.size());
  float* stats = batch_stats_.data();

  // Forward, training mode: z = conv(a_prev), a = relu6(batchnorm(z)).
  const float* x = images;
  for (int l = 0; l < num_convs; ++l) {
    const ConvLayerSpec& c = arch_.convs[l];
    const ConvOffsets& o = offsets_[l];
    ConvForward(l, batch, params, x, z_[l].data());
    BatchNormRelu6TrainingForward(OutputRows(c, batch), c.out_channels, z_[l].data(),
                                  params + o.gamma, params + o.beta, kBatchNormEpsilon,
                                  a_[l].data(), stats + o.mean, stats + o.variance);
    x = a_[l].data();
  }
  const ConvLayerSpec& last = arch_.convs.back();
  const int features = arch_.classifier_in;
  GlobalAvgPoolForward(batch, last.out_h, last.out_w, features, x, pooled_.data());
  FullyConnectedForward(batch, features, classes, pooled_.data(), params + classifier_weights_,
                        params + classifier_bias_, logits_.data());
  TrainStepResult result;
  result.loss = SoftmaxCrossEntropy(batch, classes, logits_.data(), labels, label_smoothing,
                                    d_logits_.data(), &result.correct);

  // Backward. `d` holds d loss / d a of the current layer; batch norm turns it into d z in
  // place, the convolution writes d a of the layer below into `other`.
  FullyConnectedBackward(batch, features, classes, pooled_.data(), params + classifier_weights_,
                         d_logits_.data(), d_pooled_.data(), gradients + classifier_weights_,
                         gradients + classifier_bias_);
  float* d = ping_.data();
  float* other = pong_.data();
  GlobalAvgPoolBackward(batch, last.out_h, last.out_w, features, d_pooled_.data(), d);
  for (int l = num_convs - 1; l >= 0; --l) {
    const ConvLayerSpec& c = arch_.convs[l];
    const ConvOffsets& o = offsets_[l];
    BatchNormRelu6Backward(OutputRows(c, batch), c.out_channels, z_[l].data(), a_[l].data(),
                           params + o.gamma, stats + o.mean, stats + o.variance,
                           kBatchNormEpsilon, d, d, gradients + o.gamma, gradients + o.beta);
    const float* input = l > 0 ? a_[l - 1].data() : images;
    ConvBackward(l, batch, params, input, d, l > 0 ? other : nullptr, gradients);
    std::swap(d, other);
  }
  if (batch_stats != nullptr) {
    std::memcpy(batch_stats, stats, sizeof(float) * state_.total_size());
  }
  return result;
}

void MobileNetV1::Infer(const float* params, const float* state, const float* images,
                        int batch, float* logits) {
  MOBILENET_CHECK(batch >= 1);
  EnsureScratch(batch);
  const float* x = images;
  for (int l = 0; l < static_cast<int>(arch_.convs.size()); ++l) {
    const ConvLayerSpec& c = arch_.convs[l];
    const ConvOffsets& o = offsets_[l];
    float* out = (l % 2 == 0) ? ping_.data() : pong_.data();
    ConvForward(l, batch, params, x, out);
    BatchNormRelu6InferenceForward(OutputRows(c, batch), c.out_channels, out,
                                   params + o.gamma, params + o.beta, state + o.mean,
                                   state + o.variance, kBatchNormEpsilon, out);
    x = out;
  }
  const ConvLayerSpec& last = arch_.convs.back();
  GlobalAvgPoolForward(batch, last.out_h, last.out_w, arch_.classifier_in, x, pooled_.data());
  FullyConnectedForward(batch, arch_.classifier_in, arch_.classifier_out, pooled_.data(),
                        params + classifier_weights_, params + classifier_bias_, logits);
}

absl::Span<const float> MobileNetV1::last_logits() const {
  return absl::Span<const float>(logits_.data(),
                                 static_cast<size_t>(last_batch_) * arch_.classifier_out);
}

}  // namespace mobilenet
