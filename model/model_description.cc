#include "model/model_description.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/json_text.h"

namespace mobilenet {
namespace {

std::string ShapeString(int h, int w, int c) { return absl::StrCat(h, "x", w, "x", c); }

LayerType TypeOf(ConvKind kind) {
  switch (kind) {
    case ConvKind::kFull:
      return LayerType::kFullConv3x3;
    case ConvKind::kDepthwise:
      return LayerType::kDepthwiseConv3x3;
    case ConvKind::kPointwise:
      return LayerType::kPointwiseConv1x1;
  }
  return LayerType::kFullConv3x3;
}

// Weights of one convolution, as the paper counts them.
int64_t ConvParams(const ConvLayerSpec& c) {
  const int64_t taps = int64_t{c.kernel} * c.kernel;
  if (c.kind == ConvKind::kDepthwise) return taps * c.in_channels;
  return taps * c.in_channels * c.out_channels;
}

// "4.21M" / "569.0M" style, at least two significant decimals for small models.
std::string Millions(int64_t n) { return absl::StrFormat("%.2fM", n / 1e6); }

}  // namespace

const char* LayerTypeName(LayerType type) {
  switch (type) {
    case LayerType::kFullConv3x3:
      return "Conv 3x3";
    case LayerType::kDepthwiseConv3x3:
      return "Conv dw 3x3";
    case LayerType::kPointwiseConv1x1:
      return "Conv 1x1";
    case LayerType::kFullyConnected:
      return "Fully connected";
  }
  return "unknown";
}

ModelDescription Describe(const Architecture& arch) {
  ModelDescription d;
  for (const ConvLayerSpec& c : arch.convs) {
    LayerDescription layer;
    layer.name = c.name;
    layer.type = TypeOf(c.kind);
    layer.stride = c.stride;
    layer.input_shape = ShapeString(c.in_h, c.in_w, c.in_channels);
    layer.output_shape = ShapeString(c.out_h, c.out_w, c.out_channels);
    layer.params = ConvParams(c);
    layer.mult_adds = layer.params * c.out_h * c.out_w;
    d.batch_norm_params += 2 * int64_t{c.out_channels};
    d.layers.push_back(std::move(layer));
  }
  LayerDescription fc;
  fc.name = arch.classifier_name;
  fc.type = LayerType::kFullyConnected;
  fc.stride = 1;
  fc.input_shape = ShapeString(1, 1, arch.classifier_in);
  fc.output_shape = ShapeString(1, 1, arch.classifier_out);
  fc.params = int64_t{arch.classifier_in} * arch.classifier_out;
  fc.mult_adds = fc.params;
  d.classifier_bias = arch.classifier_out;
  d.layers.push_back(std::move(fc));

  for (const LayerDescription& layer : d.layers) {
    d.params += layer.params;
    d.mult_adds += layer.mult_adds;
  }
  for (LayerType type : {LayerType::kPointwiseConv1x1, LayerType::kDepthwiseConv3x3,
                         LayerType::kFullConv3x3, LayerType::kFullyConnected}) {
    int64_t params = 0, mult_adds = 0;
    bool present = false;
    for (const LayerDescription& layer : d.layers) {
      if (layer.type != type) continue;
      present = true;
      params += layer.params;
      mult_adds += layer.mult_adds;
    }
    if (!present) continue;
    TypeShare share;
    share.type = type;
    share.mult_adds_percent = d.mult_adds > 0 ? 100.0 * mult_adds / d.mult_adds : 0.0;
    share.params_percent = d.params > 0 ? 100.0 * params / d.params : 0.0;
    d.shares.push_back(share);
  }
  return d;
}

std::string FormatDescriptionTable(const ModelDescription& d) {
  std::string out = absl::StrFormat("%-36s %-15s %6s %-14s %-14s %12s %14s\n", "Layer", "Type",
                                    "Stride", "Input", "Output", "Params", "Mult-Adds");
  for (const LayerDescription& l : d.layers) {
    absl::StrAppendFormat(&out, "%-36s %-15s %6d %-14s %-14s %12d %14d\n", l.name,
                          LayerTypeName(l.type), l.stride, l.input_shape, l.output_shape,
                          l.params, l.mult_adds);
  }
  absl::StrAppendFormat(&out,
                        "Total (as the paper counts, weights only): %s params, %s mult-adds\n",
                        Millions(d.params), Millions(d.mult_adds));
  absl::StrAppendFormat(&out, "Not counted: batch norm gamma+beta %d, classifier bias %d\n",
                        d.batch_norm_params, d.classifier_bias);
  absl::StrAppendFormat(&out, "%-15s %10s %10s\n", "Type", "Mult-Adds", "Params");
  for (const TypeShare& s : d.shares) {
    absl::StrAppendFormat(&out, "%-15s %9.2f%% %9.2f%%\n", LayerTypeName(s.type),
                          s.mult_adds_percent, s.params_percent);
  }
  return out;
}

std::string FormatDescriptionJson(const ModelDescription& d) {
  std::string out = "{\"layers\": [";
  for (size_t i = 0; i < d.layers.size(); ++i) {
    const LayerDescription& l = d.layers[i];
    absl::StrAppend(&out, i ? ", " : "", "{\"name\": ", JsonString(l.name),
                    ", \"type\": ", JsonString(LayerTypeName(l.type)),
                    ", \"stride\": ", l.stride, ", \"input\": ", JsonString(l.input_shape),
                    ", \"output\": ", JsonString(l.output_shape), ", \"params\": ", l.params,
                    ", \"mult_adds\": ", l.mult_adds, "}");
  }
  absl::StrAppend(&out, "], \"params\": ", d.params, ", \"mult_adds\": ", d.mult_adds,
                  ", \"batch_norm_params\": ", d.batch_norm_params,
                  ", \"classifier_bias\": ", d.classifier_bias, ", \"shares\": [");
  for (size_t i = 0; i < d.shares.size(); ++i) {
    const TypeShare& s = d.shares[i];
    absl::StrAppend(&out, i ? ", " : "", "{\"type\": ", JsonString(LayerTypeName(s.type)),
                    absl::StrFormat(", \"mult_adds_percent\": %.4f, \"params_percent\": %.4f}",
                                    s.mult_adds_percent, s.params_percent));
  }
  out += "]}";
  return out;
}

}  // namespace mobilenet
