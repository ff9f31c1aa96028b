#include "model/architecture.h"

#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mobilenet {
namespace {

// One depthwise-separable block of Table 1: the depthwise stride and the pointwise
// output width before the multiplier. `index` is the TF-slim layer number.
struct BlockSpec {
  int index;
  int stride;
  int base_channels;
};

// Table 1 with the official code's last depthwise stride of 1 (the paper prints s2, but the
// 7x7 input stays 7x7). Blocks 7-11 are the five 14x14x512 blocks the shallow variant drops.
constexpr BlockSpec kBlocks[] = {
    {1, 1, 64},   {2, 2, 128},  {3, 1, 128},  {4, 2, 256},  {5, 1, 256},
    {6, 2, 512},  {7, 1, 512},  {8, 1, 512},  {9, 1, 512},  {10, 1, 512},
    {11, 1, 512}, {12, 2, 1024}, {13, 1, 1024},
};

bool IsShallowRemoved(int index) { return index >= 7 && index <= 11; }

int SameOut(int in, int stride) { return (in + stride - 1) / stride; }

constexpr float kMaxAlpha = 16.0f;
constexpr int kMaxResolution = 4096;
constexpr int kMaxInputChannels = 4096;
constexpr int kMaxClasses = 1 << 20;

}  // namespace

int ScaledChannels(int base, float alpha) {
  // The small absolute slack keeps products that are whole numbers in decimal (e.g.
  // 1024 * 0.75) whole when alpha was rounded to the nearest float below them.
  const int scaled = static_cast<int>(static_cast<double>(base) * alpha + 1e-4);
  return scaled < 8 ? 8 : scaled;
}

absl::StatusOr<Architecture> BuildArchitecture(const MobileNetConfig& config) {
  if (!(config.alpha > 0.0f) || !(config.alpha <= kMaxAlpha)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "alpha (width multiplier) must be in (0, ", kMaxAlpha, "], got ", config.alpha));
  }
  if (config.resolution < 1 || config.resolution > kMaxResolution) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resolution must be in [1, ", kMaxResolution, "], got ", config.resolution));
  }
  if (config.input_channels < 1 || config.input_channels > kMaxInputChannels) {
    return absl::InvalidArgumentError(absl::StrCat("input_channels must be in [1, ",
                                                   kMaxInputChannels, "], got ",
                                                   config.input_channels));
  }
  if (config.num_classes < 2 || config.num_classes > kMaxClasses) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_classes must be in [2, ", kMaxClasses, "], got ", config.num_classes));
  }

  Architecture arch;
  arch.config = config;

  ConvLayerSpec first;
  first.name = "MobilenetV1/Conv2d_0";
  first.kind = ConvKind::kFull;
  first.kernel = 3;
  first.stride = 2;
  first.in_h = first.in_w = config.resolution;
  first.in_channels = config.input_channels;
  first.out_h = first.out_w = SameOut(config.resolution, 2);
  first.out_channels = ScaledChannels(32, config.alpha);
  arch.convs.push_back(first);

  for (const BlockSpec& block : kBlocks) {
    if (config.shallow && IsShallowRemoved(block.index)) continue;
    const ConvLayerSpec& prev = arch.convs.back();
    const std::string prefix = absl::StrCat("MobilenetV1/Conv2d_", block.index);

    ConvLayerSpec depthwise;
    depthwise.name = prefix + "_depthwise";
    depthwise.kind = ConvKind::kDepthwise;
    depthwise.kernel = 3;
    depthwise.stride = block.stride;
    depthwise.in_h = prev.out_h;
    depthwise.in_w = prev.out_w;
    depthwise.in_channels = prev.out_channels;
    depthwise.out_h = SameOut(prev.out_h, block.stride);
    depthwise.out_w = SameOut(prev.out_w, block.stride);
    depthwise.out_channels = prev.out_channels;

    ConvLayerSpec pointwise;
    pointwise.name = prefix + "_pointwise";
    pointwise.kind = ConvKind::kPointwise;
    pointwise.kernel = 1;
    pointwise.stride = 1;
    pointwise.in_h = pointwise.out_h = depthwise.out_h;
    pointwise.in_w = pointwise.out_w = depthwise.out_w;
    pointwise.in_channels = depthwise.out_channels;
    pointwise.out_channels = ScaledChannels(block.base_channels, config.alpha);

    arch.convs.push_back(std::move(depthwise));
    arch.convs.push_back(std::move(pointwise));
  }

  arch.classifier_name = "MobilenetV1/Logits/Conv2d_1c_1x1";
  arch.classifier_in = arch.convs.back().out_channels;
  arch.classifier_out = config.num_classes;
  return arch;
}

}  // namespace mobilenet
