#include "worker/training_data_flags.h"

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

ABSL_FLAG(std::string, preprocessing, "default",
          "inception (random resized crop, flip, colour distortion; evaluation on the central "
          "crop), pad_crop (flip and pad-and-crop by --crop_padding: the CIFAR/Fashion-MNIST "
          "augmentation) or default (inception for image folders, pad_crop for idx and cifar).");
ABSL_FLAG(double, min_crop_area, 0.08,
          "inception: smallest crop, as a fraction of the image area.");
ABSL_FLAG(double, max_crop_area, 1.0, "inception: largest crop, as a fraction of the image area.");
ABSL_FLAG(double, min_aspect_ratio, 3.0 / 4.0, "inception: smallest crop width / height.");
ABSL_FLAG(double, max_aspect_ratio, 4.0 / 3.0, "inception: largest crop width / height.");
ABSL_FLAG(bool, color_distortion, true,
          "inception: random brightness, saturation, hue and contrast (3-channel images).");
ABSL_FLAG(double, central_crop_fraction, 0.875,
          "inception: evaluation crops this fraction of each side from the center.");
ABSL_FLAG(std::string, mean, "",
          "Per-channel mean of the pixels scaled to [0, 1]: one value, or one per channel "
          "(comma-separated). Empty: ImageNet's for 3-channel data, Fashion-MNIST's for 1.");
ABSL_FLAG(std::string, std, "",
          "Per-channel standard deviation, as --mean. Empty: ImageNet's for 3-channel data, "
          "Fashion-MNIST's for 1.");
ABSL_FLAG(bool, skip_bad_images, false,
          "Image folders: leave out the files whose header cannot be read (counted and "
          "listed at start). Without it a bad file is an error naming it, before training.");
ABSL_FLAG(int, input_threads, 1,
          "Image folders: threads decoding and augmenting images ahead of training (they "
          "share the cores with --threads).");
ABSL_FLAG(int, prefetch_batches, 4, "Image folders: batches prepared ahead of training.");

namespace mobilenet {
namespace {

absl::StatusOr<std::vector<float>> ParseFloatList(const std::string& flag,
                                                  const std::string& text) {
  std::vector<float> values;
  if (text.empty()) return values;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    float value;
    if (!absl::SimpleAtof(part, &value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", flag, ": \"", part, "\" is not a number (give e.g. 0.5 or 0.485,0.456,0.406)"));
    }
    values.push_back(value);
  }
  return values;
}

}  // namespace

bool IsTrainingDataFlagsFile(absl::string_view path) {
  return absl::EndsWith(path, "/training_data_flags.cc");
}

absl::Status TrainingDataOptionsFromFlags(TrainingDataOptions& options) {
  ASSIGN_OR_RETURN(options.preprocessing,
                   ParsePreprocessingKind(absl::GetFlag(FLAGS_preprocessing)));
  InceptionPreprocessingConfig& inception = options.inception;
  inception.min_crop_area = static_cast<float>(absl::GetFlag(FLAGS_min_crop_area));
  inception.max_crop_area = static_cast<float>(absl::GetFlag(FLAGS_max_crop_area));
  inception.min_aspect_ratio = static_cast<float>(absl::GetFlag(FLAGS_min_aspect_ratio));
  inception.max_aspect_ratio = static_cast<float>(absl::GetFlag(FLAGS_max_aspect_ratio));
  inception.color_distortion = absl::GetFlag(FLAGS_color_distortion);
  inception.central_fraction = static_cast<float>(absl::GetFlag(FLAGS_central_crop_fraction));
  ASSIGN_OR_RETURN(options.mean, ParseFloatList("mean", absl::GetFlag(FLAGS_mean)));
  ASSIGN_OR_RETURN(options.stddev, ParseFloatList("std", absl::GetFlag(FLAGS_std)));
  options.skip_bad_images = absl::GetFlag(FLAGS_skip_bad_images);
  options.input_threads = absl::GetFlag(FLAGS_input_threads);
  options.prefetch_batches = absl::GetFlag(FLAGS_prefetch_batches);
  return absl::OkStatus();
}

}  // namespace mobilenet
