// Shapes of a 2-D convolution over NHWC tensors with TensorFlow "SAME" padding.
#ifndef MOBILENET_MODEL_LAYERS_CONV_GEOMETRY_H_
#define MOBILENET_MODEL_LAYERS_CONV_GEOMETRY_H_

#include <algorithm>
#include <cstdint>

namespace mobilenet {

struct ConvGeometry {
  int batch = 0;
  int in_h = 0, in_w = 0, in_channels = 0;
  int out_h = 0, out_w = 0, out_channels = 0;
  int kernel = 3;  // square kernel, kernel x kernel
  int stride = 1;
  int pad_top = 0, pad_left = 0;  // SAME: the extra padding row/column goes bottom/right

  // TensorFlow SAME padding: out = ceil(in / stride),
  // pad_total = max((out - 1) * stride + kernel - in, 0), pad_before = pad_total / 2.
  static ConvGeometry Same(int batch, int in_h, int in_w, int in_channels, int out_channels,
                           int kernel, int stride) {
    ConvGeometry g;
    g.batch = batch;
    g.in_h = in_h;
    g.in_w = in_w;
    g.in_channels = in_channels;
    g.out_channels = out_channels;
    g.kernel = kernel;
    g.stride = stride;
    g.out_h = (in_h + stride - 1) / stride;
    g.out_w = (in_w + stride - 1) / stride;
    g.pad_top = std::max((g.out_h - 1) * stride + kernel - in_h, 0) / 2;
    g.pad_left = std::max((g.out_w - 1) * stride + kernel - in_w, 0) / 2;
    return g;
  }

  int64_t input_size() const { return int64_t{batch} * in_h * in_w * in_channels; }
  int64_t output_size() const { return int64_t{batch} * out_h * out_w * out_channels; }
};

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_LAYERS_CONV_GEOMETRY_H_
