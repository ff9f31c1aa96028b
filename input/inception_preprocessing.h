// Inception-style preprocessing, the training recipe of Inception and MobileNet (TF-slim's
// inception_preprocessing.py): one decoded uint8 HWC image of any size becomes the float HWC
// input of the network at a fixed resolution.
//
// Training:
//   1. random resized crop, as tf.image.sample_distorted_bounding_box over the whole image:
//      up to max_crop_attempts candidates whose area fraction is uniform in
//      [min_crop_area, max_crop_area] and whose aspect ratio (width / height) is log-uniform
//      in [min_aspect_ratio, max_aspect_ratio]; the first candidate that fits in the image
//      with its rounded integer size still inside both ranges is taken, at a uniform
//      position. When no attempt fits, the whole image (TF's fallback; torchvision's would
//      be a central crop);
//   2. resize of the crop to the output size (below);
//   3. horizontal flip with probability 1/2;
//   4. colour distortion of 3-channel images (when enabled): brightness, saturation, hue and
//      contrast with TF's default strengths, in one of TF-slim's four fixed orders, the order
//      drawn at random per image (distort_color with fast_mode=False). Values are clamped to
//      [0, 1] after every step (TF clamps once, at the end); images of other channel counts
//      are not colour-distorted.
// Evaluation: a central crop of central_fraction of each side (tf.image.central_crop:
// offset floor((size - size * fraction) / 2) on each side), then the resize. No randomness.
// Both end with the per-channel normalization (x / 255 - mean) / stddev.
//
// Resize: a separable triangle (tent) filter with half-pixel centers over the crop window
// only (as if the crop were cut out first). Upscaling, or with antialias off, the tent
// spans one source pixel on each side of the sample point: exactly bilinear interpolation
// with half-pixel centers and clamped edges (tf.image.resize bilinear, PyTorch
// align_corners=False). Downscaling by a factor s > 1 with antialias on, the tent widens to
// s source pixels on each side, as PIL's BILINEAR and tf.image.resize(antialias=True) do,
// so every source pixel contributes and fine detail averages out instead of aliasing. Taps
// that would fall outside the crop are dropped and the remaining weights renormalized.
//
// Randomness comes from one SplitMix64 seeded by the caller, so a seed derived from (data
// seed, epoch, example index) fixes every choice, independent of threads and batch sizes.
#ifndef MOBILENET_INPUT_INCEPTION_PREPROCESSING_H_
#define MOBILENET_INPUT_INCEPTION_PREPROCESSING_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/seeded_random.h"
#include "input/image_source.h"

namespace mobilenet {

// ImageNet's per-channel (RGB) pixel mean and standard deviation, scaled to [0, 1].
inline const std::vector<float>& ImageNetMean() {
  static const std::vector<float> mean = {0.485f, 0.456f, 0.406f};
  return mean;
}
inline const std::vector<float>& ImageNetStddev() {
  static const std::vector<float> stddev = {0.229f, 0.224f, 0.225f};
  return stddev;
}

struct InceptionPreprocessingConfig {
  int output_height = 224;
  int output_width = 224;
  int channels = 3;      // every input image must have this many; so has the output
  bool training = true;  // false: the evaluation path (central crop, no randomness)

  // Random resized crop (training).
  float min_crop_area = 0.08f;  // fraction of the image area, in (0, 1]
  float max_crop_area = 1.0f;
  float min_aspect_ratio = 3.0f / 4.0f;  // width / height, > 0
  float max_aspect_ratio = 4.0f / 3.0f;
  int max_crop_attempts = 10;
  bool random_flip = true;

  // Colour distortion (training, 3 channels). A strength of 0 makes its step the identity.
  bool color_distortion = true;
  float brightness_delta = 32.0f / 255.0f;  // added to every value: uniform in [-d, d]
  float saturation_range = 0.5f;  // HSV saturation scaled by uniform [1 - r, 1 + r], r <= 1
  float hue_delta = 0.2f;         // hue turned by uniform [-d, d] of a full turn, d <= 0.5
  float contrast_range = 0.5f;    // distance from each channel's mean scaled by [1 - r, 1 + r]

  // Evaluation.
  float central_fraction = 0.875f;  // in (0, 1]

  bool antialias = true;  // widen the resize filter when shrinking (see the file comment)

  // One value for all channels, or one per channel; defaults: ImageNet's (3 channels).
  std::vector<float> mean = ImageNetMean();
  std::vector<float> stddev = ImageNetStddev();
};

// A window of the source image, in pixels.
struct CropWindow {
  int y = 0;
  int x = 0;
  int height = 0;
  int width = 0;
};

// The parameters of one colour distortion; the default is the identity.
struct ColorDistortion {
  int order = 0;         // TF-slim's color_ordering, 0..3
  float brightness = 0;  // delta
  float saturation = 1;  // factor
  float hue = 0;         // delta in turns
  float contrast = 1;    // factor
};

// Every random choice for one image.
struct InceptionAugmentation {
  CropWindow crop;
  bool flip = false;
  bool distort_color = false;
  ColorDistortion color;
};

// Immutable; thread-safe.
class InceptionPreprocessor {
 public:
  // InvalidArgument naming the field if an output size or channels is < 1, the crop area
  // range is not 0 < min <= max <= 1, the aspect range is not 0 < min <= max,
  // max_crop_attempts < 1, a colour strength is negative (or saturation/contrast_range > 1,
  // hue_delta > 0.5), central_fraction is outside (0, 1], mean/stddev do not have 1 or
  // `channels` values, or a stddev is <= 0.
  static absl::StatusOr<InceptionPreprocessor> Create(const InceptionPreprocessingConfig& config);

  const InceptionPreprocessingConfig& config() const { return config_; }
  // Floats Apply writes: output_height * output_width * channels.
  int64_t output_floats() const {
    return int64_t{config_.output_height} * config_.output_width * config_.channels;
  }

  // A random crop of a height x width image (both >= 1), as in step 1 of the file comment.
  CropWindow SampleCrop(int height, int width, SplitMix64* rng) const;
  // The evaluation crop of a height x width image (both >= 1).
  CropWindow CentralCrop(int height, int width) const;
  // The choices for one height x width image: random for training (the crop, then the
  // flip, then the colour distortion are drawn from `rng`); the central crop and nothing
  // else for evaluation (`rng` unused).
  InceptionAugmentation Sample(int height, int width, SplitMix64* rng) const;

  // Writes output_floats() floats (HWC) to `out`. InvalidArgument if the image is
  // inconsistent (a dimension < 1, pixels not height * width * channels bytes), has other
  // than config().channels channels, or the crop is not inside it.
  absl::Status Apply(const DecodedImage& image, const InceptionAugmentation& augmentation,
                     float* out) const;

  // Sample with a SplitMix64 seeded by `seed`, then Apply.
  absl::Status Preprocess(const DecodedImage& image, uint64_t seed, float* out) const;

 private:
  InceptionPreprocessor(InceptionPreprocessingConfig config, std::vector<float> scale,
                        std::vector<float> offset);

  InceptionPreprocessingConfig config_;
  // Per channel: normalized = x * scale + offset, x in [0, 1].
  std::vector<float> scale_;
  std::vector<float> offset_;
};

}  // namespace mobilenet

#endif  // MOBILENET_INPUT_INCEPTION_PREPROCESSING_H_
