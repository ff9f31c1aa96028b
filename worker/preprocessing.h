// Turns one uint8 HWC image into the float HWC input of the network: optional random
// horizontal flip and random pad-and-crop (augmentation), optional bilinear resize to the
// model's input resolution, then per-channel normalization (x / 255 - mean) / std.
//
// The steps are applied in this order, fused into one pass over the output:
//   1. flip: column x takes source column width - 1 - x;
//   2. pad-and-crop at the source resolution: zero-pad every side by P pixels, then crop
//      a source-sized window whose top-left corner in the padded image is
//      (P + shift_y, P + shift_x); shift 0 is the identity, pixels that fall into the
//      padding are 0 (before normalization);
//   3. bilinear resize to the output size with half-pixel centers (PyTorch
//      align_corners=False, TF2 tf.image.resize), edge pixels clamped, no antialiasing;
//   4. normalization, and replication of a 1-channel source if more channels are asked.
#ifndef MOBILENET_WORKER_PREPROCESSING_H_
#define MOBILENET_WORKER_PREPROCESSING_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/seeded_random.h"
#include "worker/dataset.h"

namespace mobilenet {

// Mean and standard deviation of Fashion-MNIST's training pixels, scaled to [0, 1].
inline constexpr float kFashionMnistMean = 0.2860f;
inline constexpr float kFashionMnistStd = 0.3530f;

struct PreprocessingConfig {
  int output_height = 0;    // 0: the source height
  int output_width = 0;     // 0: the source width
  int output_channels = 0;  // 0: the source channels; a 1-channel source may be widened
  bool random_flip = false;  // flip horizontally with probability 1/2
  int crop_padding = 0;      // P; shifts are drawn uniformly from [-P, P] on each axis
  // One value for all channels, or one per output channel.
  std::vector<float> mean = {kFashionMnistMean};
  std::vector<float> stddev = {kFashionMnistStd};
};

// The random choices for one image. The default is the identity.
struct Augmentation {
  bool flip = false;
  int shift_y = 0;  // crop corner offset from (P, P) in the padded image; any value works,
  int shift_x = 0;  // the output is all padding when |shift| >= the image size
};

// Immutable; thread-safe.
class ImagePreprocessor {
 public:
  // InvalidArgument (naming the field) if a source dimension is < 1, an output size is < 0,
  // output_channels differs from the source's (unless the source has one channel),
  // crop_padding < 0, mean/stddev do not have 1 or output_channels entries, or a stddev
  // is <= 0.
  static absl::StatusOr<ImagePreprocessor> Create(ImageShape input,
                                                  const PreprocessingConfig& config);

  const ImageShape& input_shape() const { return input_; }
  const ImageShape& output_shape() const { return output_; }

  // Draws an augmentation as the config asks: the identity when neither flip nor padding
  // is enabled.
  Augmentation Sample(SplitMix64* rng) const;

  // Writes output_shape().elements() floats (HWC) to `out` from input_shape().elements()
  // bytes (HWC) at `image`.
  void Apply(const uint8_t* image, const Augmentation& augmentation, float* out) const;

 private:
  ImagePreprocessor(ImageShape input, ImageShape output, bool random_flip, int crop_padding,
                    std::vector<float> scale, std::vector<float> offset);

  ImageShape input_;
  ImageShape output_;
  bool random_flip_;
  int crop_padding_;
  // Per output channel: out = raw * scale + offset, raw in [0, 255].
  std::vector<float> scale_;
  std::vector<float> offset_;
};

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_PREPROCESSING_H_
