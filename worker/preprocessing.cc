#include "worker/preprocessing.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mobilenet {
namespace {

// One output coordinate along an axis: the two source indices it interpolates (-1 when
// the index falls into the crop padding) and the weight of the second.
struct Tap {
  int i0;
  int i1;
  float w;
};

// Half-pixel-center bilinear taps for resizing `in` samples to `out`, with each source
// index passed through `to_source` (flip and crop shift; returns -1 for padding).
template <typename ToSource>
void ComputeTaps(int in, int out, ToSource to_source, Tap* taps) {
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int o = 0; o < out; ++o) {
    float f = (static_cast<float>(o) + 0.5f) * scale - 0.5f;
    f = std::min(std::max(f, 0.0f), static_cast<float>(in - 1));
    const int i0 = static_cast<int>(f);
    const int i1 = std::min(i0 + 1, in - 1);
    taps[o] = Tap{to_source(i0), to_source(i1), f - static_cast<float>(i0)};
  }
}

absl::Status CheckPerChannel(const std::vector<float>& values, const char* name, int channels) {
  if (values.size() != 1 && values.size() != static_cast<size_t>(channels)) {
    return absl::InvalidArgumentError(absl::StrCat("preprocessing: ", name, " has ",
                                                   values.size(), " values, expected 1 or ",
                                                   channels, " (one per output channel)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ImagePreprocessor> ImagePreprocessor::Create(ImageShape input,
                                                            const PreprocessingConfig& config) {
  if (input.height < 1 || input.width < 1 || input.channels < 1) {
    return absl::InvalidArgumentError(absl::StrCat("preprocessing: input shape ",
                                                   input.DebugString(),
                                                   " must have every dimension >= 1"));
  }
  if (config.output_height < 0 || config.output_width < 0 || config.output_channels < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "preprocessing: output size ", config.output_height, "x", config.output_width, "x",
        config.output_channels, " must be >= 0 (0 keeps the input size)"));
  }
  ImageShape output{config.output_height > 0 ? config.output_height : input.height,
                    config.output_width > 0 ? config.output_width : input.width,
                    config.output_channels > 0 ? config.output_channels : input.channels};
  if (output.channels != input.channels && input.channels != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("preprocessing: output_channels ", output.channels, " must equal the ",
                     input.channels, " input channels (only 1-channel input can be widened)"));
  }
  if (config.crop_padding < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("preprocessing: crop_padding must be >= 0, got ", config.crop_padding));
  }
  absl::Status status = CheckPerChannel(config.mean, "mean", output.channels);
  if (status.ok()) status = CheckPerChannel(config.stddev, "stddev", output.channels);
  if (!status.ok()) return status;
  std::vector<float> scale(output.channels), offset(output.channels);
  for (int c = 0; c < output.channels; ++c) {
    const float mean = config.mean[config.mean.size() == 1 ? 0 : c];
    const float stddev = config.stddev[config.stddev.size() == 1 ? 0 : c];
    if (!(stddev > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("preprocessing: stddev of channel ", c, " must be > 0, got ", stddev));
    }
    scale[c] = 1.0f / (255.0f * stddev);
    offset[c] = -mean / stddev;
  }
  return ImagePreprocessor(input, output, config.random_flip, config.crop_padding,
                           std::move(scale), std::move(offset));
}

ImagePreprocessor::ImagePreprocessor(ImageShape input, ImageShape output, bool random_flip,
                                     int crop_padding, std::vector<float> scale,
                                     std::vector<float> offset)
    : input_(input),
      output_(output),
      random_flip_(random_flip),
      crop_padding_(crop_padding),
      scale_(std::move(scale)),
      offset_(std::move(offset)) {}

Augmentation ImagePreprocessor::Sample(SplitMix64* rng) const {
  Augmentation augmentation;
  if (random_flip_) augmentation.flip = rng->Bernoulli();
  if (crop_padding_ > 0) {
    const uint64_t range = 2 * static_cast<uint64_t>(crop_padding_) + 1;
    augmentation.shift_y = static_cast<int>(rng->Uniform(range)) - crop_padding_;
    augmentation.shift_x = static_cast<int>(rng->Uniform(range)) - crop_padding_;
  }
  return augmentation;
}

void ImagePreprocessor::Apply(const uint8_t* image, const Augmentation& augmentation,
                              float* out) const {
  const int in_h = input_.height, in_w = input_.width, in_c = input_.channels;
  const int out_h = output_.height, out_w = output_.width, out_c = output_.channels;

  std::vector<Tap> rows(out_h), cols(out_w);
  ComputeTaps(in_h, out_h,
              [&](int y) {
                const int source = y + augmentation.shift_y;
                return source >= 0 && source < in_h ? source : -1;
              },
              rows.data());
  ComputeTaps(in_w, out_w,
              [&](int x) {
                const int shifted = x + augmentation.shift_x;
                if (shifted < 0 || shifted >= in_w) return -1;
                return augmentation.flip ? in_w - 1 - shifted : shifted;
              },
              cols.data());
  // Vertical interpolation first, into one float row of the source width followed by
  // one zero pixel that columns in the padding point at; then horizontal interpolation.
  const int row_floats = in_w * in_c;
  for (Tap& col : cols) {
    col.i0 = (col.i0 >= 0 ? col.i0 : in_w) * in_c;
    col.i1 = (col.i1 >= 0 ? col.i1 : in_w) * in_c;
  }
  std::vector<float> row(row_floats + in_c, 0.0f);
  for (int oy = 0; oy < out_h; ++oy) {
    const Tap& ty = rows[oy];
    const uint8_t* top = ty.i0 >= 0 ? image + static_cast<int64_t>(ty.i0) * row_floats : nullptr;
    const uint8_t* bottom =
        ty.i1 >= 0 ? image + static_cast<int64_t>(ty.i1) * row_floats : nullptr;
    const float w = ty.w;
    if (top != nullptr && bottom != nullptr) {
      for (int i = 0; i < row_floats; ++i) {
        const float a = top[i], b = bottom[i];
        row[i] = a + w * (b - a);
      }
    } else if (top != nullptr) {
      for (int i = 0; i < row_floats; ++i) row[i] = (1.0f - w) * top[i];
    } else if (bottom != nullptr) {
      for (int i = 0; i < row_floats; ++i) row[i] = w * bottom[i];
    } else {
      std::fill(row.begin(), row.begin() + row_floats, 0.0f);
    }
    for (int ox = 0; ox < out_w; ++ox) {
      const Tap& tx = cols[ox];
      for (int oc = 0; oc < out_c; ++oc) {
        const int ic = in_c == 1 ? 0 : oc;
        const float a = row[tx.i0 + ic], b = row[tx.i1 + ic];
        *out++ = (a + tx.w * (b - a)) * scale_[oc] + offset_[oc];
      }
    }
  }
}

}  // namespace mobilenet
