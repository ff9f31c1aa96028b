#include "input/inception_preprocessing.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace mobilenet {
namespace {

// The taps of one resize axis: output sample o reads `count[o]` consecutive source samples
// from `first[o]` with weights[o * max_taps + k], which sum to `gain`.
struct ResizeFilter {
  int max_taps = 0;
  std::vector<int> first;
  std::vector<int> count;
  std::vector<float> weights;
};

// Tent filter taps (see the file comment) for resizing `in` samples to `out`.
ResizeFilter MakeResizeFilter(int in, int out, bool antialias, float gain) {
  const double scale = static_cast<double>(in) / out;
  const double support = antialias ? std::max(scale, 1.0) : 1.0;
  ResizeFilter f;
  f.max_taps = static_cast<int>(std::ceil(2 * support)) + 1;
  f.first.resize(out);
  f.count.resize(out);
  f.weights.assign(static_cast<size_t>(out) * f.max_taps, 0.0f);
  for (int o = 0; o < out; ++o) {
    const double center = (o + 0.5) * scale;  // source pixel i covers [i, i + 1)
    const int lo = std::max(0, static_cast<int>(std::ceil(center - support - 0.5)));
    const int hi = std::min(in - 1, static_cast<int>(std::floor(center + support - 0.5)));
    float* w = &f.weights[static_cast<size_t>(o) * f.max_taps];
    double sum = 0;
    int n = 0;
    for (int i = lo; i <= hi && n < f.max_taps; ++i, ++n) {
      const double weight = std::max(0.0, 1.0 - std::abs(i + 0.5 - center) / support);
      w[n] = static_cast<float>(weight);
      sum += weight;
    }
    // The nearest source pixel is at most 1/2 from the center, so sum > 0.
    for (int k = 0; k < n; ++k) w[k] = static_cast<float>(w[k] / sum * gain);
    f.first[o] = lo;
    f.count[o] = n;
  }
  return f;
}

// Resizes `crop` of `image` to out_h x out_w, mirrored left-right if `flip`, into `out`
// (HWC) with values in [0, 1].
void ResizeCrop(const DecodedImage& image, const CropWindow& crop, int out_h, int out_w,
                bool antialias, bool flip, float* out) {
  const int c = image.channels;
  const ResizeFilter rows = MakeResizeFilter(crop.height, out_h, antialias, 1.0f / 255.0f);
  const ResizeFilter cols = MakeResizeFilter(crop.width, out_w, antialias, 1.0f);
  const int row_floats = crop.width * c;
  const size_t image_row = static_cast<size_t>(image.width) * c;
  const uint8_t* origin =
      image.pixels.data() + crop.y * image_row + static_cast<size_t>(crop.x) * c;
  std::vector<float> row(row_floats);
  for (int oy = 0; oy < out_h; ++oy) {
    // Vertical pass: one float row of the crop's width.
    std::fill(row.begin(), row.end(), 0.0f);
    const float* wy = &rows.weights[static_cast<size_t>(oy) * rows.max_taps];
    for (int k = 0; k < rows.count[oy]; ++k) {
      const uint8_t* src = origin + (rows.first[oy] + k) * image_row;
      const float w = wy[k];
      for (int i = 0; i < row_floats; ++i) row[i] += w * src[i];
    }
    // Horizontal pass.
    for (int ox = 0; ox < out_w; ++ox) {
      const int sx = flip ? out_w - 1 - ox : ox;
      const float* wx = &cols.weights[static_cast<size_t>(sx) * cols.max_taps];
      const float* src = row.data() + static_cast<size_t>(cols.first[sx]) * c;
      for (int ch = 0; ch < c; ++ch) {
        float sum = 0;
        for (int k = 0; k < cols.count[sx]; ++k) sum += wx[k] * src[k * c + ch];
        *out++ = sum;
      }
    }
  }
}

float Clamp01(float v) { return std::min(std::max(v, 0.0f), 1.0f); }

// The colour steps below work on `pixels` RGB triples in [0, 1] and keep them there.

void AdjustBrightness(float delta, float* rgb, int64_t pixels) {
  for (int64_t i = 0; i < pixels * 3; ++i) rgb[i] = Clamp01(rgb[i] + delta);
}

// Scales HSV saturation by `factor` (clamped to 1) keeping hue and value: with v the max
// channel, every channel's distance v - x is proportional to the saturation.
void AdjustSaturation(float factor, float* rgb, int64_t pixels) {
  for (int64_t p = 0; p < pixels; ++p, rgb += 3) {
    const float v = std::max({rgb[0], rgb[1], rgb[2]});
    const float lo = std::min({rgb[0], rgb[1], rgb[2]});
    if (v <= 0 || v == lo) continue;  // black or gray: saturation 0 stays 0
    const float s = (v - lo) / v;
    const float k = std::min(s * factor, 1.0f) / s;
    for (int ch = 0; ch < 3; ++ch) rgb[ch] = Clamp01(v - (v - rgb[ch]) * k);
  }
}

// Turns the HSV hue by `delta` of a full turn.
void AdjustHue(float delta, float* rgb, int64_t pixels) {
  for (int64_t p = 0; p < pixels; ++p, rgb += 3) {
    const float r = rgb[0], g = rgb[1], b = rgb[2];
    const float v = std::max({r, g, b});
    const float range = v - std::min({r, g, b});
    if (range <= 0) continue;  // gray has no hue
    float h;                   // in sixths of a turn, [0, 6)
    if (v == r) {
      h = (g - b) / range;
      if (h < 0) h += 6;
    } else if (v == g) {
      h = 2 + (b - r) / range;
    } else {
      h = 4 + (r - g) / range;
    }
    h += 6 * delta;
    h -= 6 * std::floor(h / 6);
    // Back to RGB with the same value v and chroma `range`.
    const int sector = std::min(static_cast<int>(h), 5);
    const float f = h - sector;
    const float lo = v - range;
    const float rising = lo + range * f, falling = v - range * f;
    float out[3];
    switch (sector) {
      case 0:
        out[0] = v, out[1] = rising, out[2] = lo;
        break;
      case 1:
        out[0] = falling, out[1] = v, out[2] = lo;
        break;
      case 2:
        out[0] = lo, out[1] = v, out[2] = rising;
        break;
      case 3:
        out[0] = lo, out[1] = falling, out[2] = v;
        break;
      case 4:
        out[0] = rising, out[1] = lo, out[2] = v;
        break;
      default:
        out[0] = v, out[1] = lo, out[2] = falling;
        break;
    }
    for (int ch = 0; ch < 3; ++ch) rgb[ch] = Clamp01(out[ch]);
  }
}

// Scales every value's distance from its channel's mean over the image by `factor`.
void AdjustContrast(float factor, float* rgb, int64_t pixels) {
  double sums[3] = {0, 0, 0};
  for (int64_t i = 0; i < pixels * 3; ++i) sums[i % 3] += rgb[i];
  float means[3];
  for (int ch = 0; ch < 3; ++ch) means[ch] = static_cast<float>(sums[ch] / pixels);
  for (int64_t i = 0; i < pixels * 3; ++i) {
    const float m = means[i % 3];
    rgb[i] = Clamp01(m + (rgb[i] - m) * factor);
  }
}

void DistortColor(const ColorDistortion& d, float* rgb, int64_t pixels) {
  enum Step { kBrightness, kSaturation, kHue, kContrast };
  // TF-slim distort_color's color_ordering 0..3.
  static constexpr Step kOrders[4][4] = {{kBrightness, kSaturation, kHue, kContrast},
                                         {kSaturation, kBrightness, kContrast, kHue},
                                         {kContrast, kHue, kBrightness, kSaturation},
                                         {kHue, kSaturation, kContrast, kBrightness}};
  for (Step step : kOrders[d.order & 3]) {
    switch (step) {
      case kBrightness:
        if (d.brightness != 0) AdjustBrightness(d.brightness, rgb, pixels);
        break;
      case kSaturation:
        if (d.saturation != 1) AdjustSaturation(d.saturation, rgb, pixels);
        break;
      case kHue:
        if (d.hue != 0) AdjustHue(d.hue, rgb, pixels);
        break;
      case kContrast:
        if (d.contrast != 1) AdjustContrast(d.contrast, rgb, pixels);
        break;
    }
  }
}

// Uniform in [lo, hi].
float UniformIn(float lo, float hi, SplitMix64* rng) {
  return lo + (hi - lo) * rng->UniformFloat();
}

absl::Status CheckPerChannel(const std::vector<float>& values, const char* name, int channels) {
  if (values.size() != 1 && values.size() != static_cast<size_t>(channels)) {
    return absl::InvalidArgumentError(absl::StrCat("inception preprocessing: ", name, " has ",
                                                   values.size(), " values, expected 1 or ",
                                                   channels, " (one per channel)"));
  }
  return absl::OkStatus();
}

absl::Status CheckRange(const char* name, float value, float lo, float hi, bool lo_open) {
  if (lo_open ? !(value > lo && value <= hi) : !(value >= lo && value <= hi)) {
    return absl::InvalidArgumentError(absl::StrCat("inception preprocessing: ", name,
                                                   " must be in ", lo_open ? "(" : "[", lo, ", ",
                                                   hi, "], got ", value));
  }
  return absl::OkStatus();
}

absl::Status Validate(const InceptionPreprocessingConfig& c) {
  if (c.output_height < 1 || c.output_width < 1 || c.channels < 1) {
    return absl::InvalidArgumentError(absl::StrCat("inception preprocessing: output ",
                                                   c.output_height, "x", c.output_width, "x",
                                                   c.channels, " must have every dimension >= 1"));
  }
  const float kHuge = 1e30f;
  absl::Status s = CheckRange("min_crop_area", c.min_crop_area, 0, 1, true);
  if (s.ok()) s = CheckRange("max_crop_area", c.max_crop_area, c.min_crop_area, 1, false);
  if (s.ok()) s = CheckRange("min_aspect_ratio", c.min_aspect_ratio, 0, kHuge, true);
  if (s.ok()) {
    s = CheckRange("max_aspect_ratio", c.max_aspect_ratio, c.min_aspect_ratio, kHuge, false);
  }
  if (s.ok() && c.max_crop_attempts < 1) {
    s = absl::InvalidArgumentError(absl::StrCat(
        "inception preprocessing: max_crop_attempts must be >= 1, got ", c.max_crop_attempts));
  }
  if (s.ok()) s = CheckRange("brightness_delta", c.brightness_delta, 0, kHuge, false);
  if (s.ok()) s = CheckRange("saturation_range", c.saturation_range, 0, 1, false);
  if (s.ok()) s = CheckRange("hue_delta", c.hue_delta, 0, 0.5f, false);
  if (s.ok()) s = CheckRange("contrast_range", c.contrast_range, 0, 1, false);
  if (s.ok()) s = CheckRange("central_fraction", c.central_fraction, 0, 1, true);
  if (s.ok()) s = CheckPerChannel(c.mean, "mean", c.channels);
  if (s.ok()) s = CheckPerChannel(c.stddev, "stddev", c.channels);
  return s;
}

}  // namespace

absl::StatusOr<InceptionPreprocessor> InceptionPreprocessor::Create(
    const InceptionPreprocessingConfig& config) {
  absl::Status status = Validate(config);
  if (!status.ok()) return status;
  std::vector<float> scale(config.channels), offset(config.channels);
  for (int c = 0; c < config.channels; ++c) {
    const float mean = config.mean[config.mean.size() == 1 ? 0 : c];
    const float stddev = config.stddev[config.stddev.size() == 1 ? 0 : c];
    if (!(stddev > 0)) {
      return absl::InvalidArgumentError(absl::StrCat("inception preprocessing: stddev of channel ",
                                                     c, " must be > 0, got ", stddev));
    }
    scale[c] = 1.0f / stddev;
    offset[c] = -mean / stddev;
  }
  return InceptionPreprocessor(config, std::move(scale), std::move(offset));
}

InceptionPreprocessor::InceptionPreprocessor(InceptionPreprocessingConfig config,
                                             std::vector<float> scale, std::vector<float> offset)
    : config_(std::move(config)), scale_(std::move(scale)), offset_(std::move(offset)) {}

CropWindow InceptionPreprocessor::SampleCrop(int height, int width, SplitMix64* rng) const {
  const double area = static_cast<double>(height) * width;
  const float log_min_ratio = std::log(config_.min_aspect_ratio);
  const float log_max_ratio = std::log(config_.max_aspect_ratio);
  for (int attempt = 0; attempt < config_.max_crop_attempts; ++attempt) {
    const double target = area * UniformIn(config_.min_crop_area, config_.max_crop_area, rng);
    const double ratio = std::exp(UniformIn(log_min_ratio, log_max_ratio, rng));
    const int w = static_cast<int>(std::lround(std::sqrt(target * ratio)));
    const int h = static_cast<int>(std::lround(std::sqrt(target / ratio)));
    if (w < 1 || h < 1 || w > width || h > height) continue;
    const double fraction = static_cast<double>(w) * h / area;
    const double actual_ratio = static_cast<double>(w) / h;
    if (fraction < config_.min_crop_area || fraction > config_.max_crop_area ||
        actual_ratio < config_.min_aspect_ratio || actual_ratio > config_.max_aspect_ratio) {
      continue;  // rounding took it outside the ranges
    }
    CropWindow crop;
    crop.height = h;
    crop.width = w;
    crop.y = static_cast<int>(rng->Uniform(height - h + 1));
    crop.x = static_cast<int>(rng->Uniform(width - w + 1));
    return crop;
  }
  return CropWindow{0, 0, height, width};
}

CropWindow InceptionPreprocessor::CentralCrop(int height, int width) const {
  const double fraction = config_.central_fraction;
  const int y = static_cast<int>((height - height * fraction) / 2);
  const int x = static_cast<int>((width - width * fraction) / 2);
  return CropWindow{y, x, height - 2 * y, width - 2 * x};
}

InceptionAugmentation InceptionPreprocessor::Sample(int height, int width, SplitMix64* rng) const {
  InceptionAugmentation a;
  if (!config_.training) {
    a.crop = CentralCrop(height, width);
    return a;
  }
  a.crop = SampleCrop(height, width, rng);
  if (config_.random_flip) a.flip = rng->Bernoulli();
  if (config_.color_distortion && config_.channels == 3) {
    a.distort_color = true;
    a.color.order = static_cast<int>(rng->Uniform(4));
    a.color.brightness = UniformIn(-config_.brightness_delta, config_.brightness_delta, rng);
    a.color.saturation = UniformIn(1 - config_.saturation_range, 1 + config_.saturation_range, rng);
    a.color.hue = UniformIn(-config_.hue_delta, config_.hue_delta, rng);
    a.color.contrast = UniformIn(1 - config_.contrast_range, 1 + config_.contrast_range, rng);
  }
  return a;
}

absl::Status InceptionPreprocessor::Apply(const DecodedImage& image,
                                          const InceptionAugmentation& augmentation,
                                          float* out) const {
  if (image.height < 1 || image.width < 1 || image.channels < 1 ||
      image.pixels.size() != static_cast<size_t>(image.height) * image.width * image.channels) {
    return absl::InvalidArgumentError(
        absl::StrCat("inception preprocessing: image ", image.height, "x", image.width, "x",
                     image.channels, " with ", image.pixels.size(),
                     " bytes is inconsistent (need dimensions >= 1 and "
                     "height * width * channels bytes)"));
  }
  if (image.channels != config_.channels) {
    return absl::InvalidArgumentError(absl::StrCat("inception preprocessing: image has ",
                                                   image.channels, " channels, expected ",
                                                   config_.channels));
  }
  const CropWindow& crop = augmentation.crop;
  if (crop.y < 0 || crop.x < 0 || crop.height < 1 || crop.width < 1 ||
      crop.y + crop.height > image.height || crop.x + crop.width > image.width) {
    return absl::InvalidArgumentError(absl::StrCat(
        "inception preprocessing: crop ", crop.height, "x", crop.width, " at (", crop.y, ", ",
        crop.x, ") is not inside the ", image.height, "x", image.width, " image"));
  }
  ResizeCrop(image, crop, config_.output_height, config_.output_width, config_.antialias,
             augmentation.flip, out);
  const int64_t pixels = int64_t{config_.output_height} * config_.output_width;
  if (augmentation.distort_color && config_.channels == 3) {
    DistortColor(augmentation.color, out, pixels);
  }
  const int c = config_.channels;
  for (int64_t p = 0; p < pixels; ++p, out += c) {
    for (int ch = 0; ch < c; ++ch) out[ch] = out[ch] * scale_[ch] + offset_[ch];
  }
  return absl::OkStatus();
}

absl::Status InceptionPreprocessor::Preprocess(const DecodedImage& image, uint64_t seed,
                                               float* out) const {
  if (image.height < 1 || image.width < 1) return Apply(image, InceptionAugmentation{}, out);
  SplitMix64 rng(seed);
  return Apply(image, Sample(image.height, image.width, &rng), out);
}

}  // namespace mobilenet
