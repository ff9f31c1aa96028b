#include "worker/image_prediction.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/json_text.h"
#include "common/status_macros.h"
#include "input/image_decoder.h"
#include "worker/training_data.h"

namespace mobilenet {
namespace {

// Softmax of `logits` in place, stable against large values.
void Softmax(std::vector<float>& logits) {
  const float top = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float& v : logits) {
    v = std::exp(v - top);
    sum += v;
  }
  for (float& v : logits) v = static_cast<float>(v / sum);
}

}  // namespace

InceptionPreprocessingConfig ImagePredictionPreprocessing(const MobileNetConfig& config) {
  InceptionPreprocessingConfig pre;
  pre.output_height = pre.output_width = config.resolution;
  pre.channels = config.input_channels;
  pre.training = false;
  pre.mean = DefaultMean(config.input_channels);
  pre.stddev = DefaultStddev(config.input_channels);
  return pre;
}

absl::StatusOr<std::vector<ImagePrediction>> PredictImages(
    MobileNetV1& net, const float* params, const float* state,
    const std::vector<std::string>& class_names, const std::vector<std::string>& files, int top_k) {
  if (top_k < 1) return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 1, got ", top_k));
  const MobileNetConfig& config = net.architecture().config;
  ASSIGN_OR_RETURN(InceptionPreprocessor preprocessor,
                   InceptionPreprocessor::Create(ImagePredictionPreprocessing(config)));
  const int k = config.num_classes;
  if (!class_names.empty() && static_cast<int>(class_names.size()) != k) {
    return absl::InvalidArgumentError(
        absl::StrCat(class_names.size(), " class names for a model of ", k, " classes"));
  }
  std::vector<ImagePrediction> predictions;
  std::vector<float> input(preprocessor.output_floats());
  std::vector<float> probabilities(k);
  for (const std::string& file : files) {
    ImagePrediction prediction;
    prediction.file = file;
    absl::StatusOr<DecodedImage> image = DecodeImageFile(file, config.input_channels);
    if (image.ok()) {
      prediction.status = preprocessor.Preprocess(*image, /*seed=*/0, input.data());
    } else {
      prediction.status = image.status();
    }
    if (prediction.status.ok()) {
      net.Infer(params, state, input.data(), 1, probabilities.data());
      Softmax(probabilities);
      std::vector<int> order(k);
      std::iota(order.begin(), order.end(), 0);
      const int shown = std::min(top_k, k);
      std::partial_sort(order.begin(), order.begin() + shown, order.end(), [&](int a, int b) {
        return probabilities[a] > probabilities[b] ||
               (probabilities[a] == probabilities[b] && a < b);
      });
      for (int i = 0; i < shown; ++i) {
        const int c = order[i];
        prediction.top.push_back(
            {c, class_names.empty() ? std::string() : class_names[c], probabilities[c]});
      }
    } else if (!absl::StrContains(prediction.status.message(), file)) {
      prediction.status = absl::Status(prediction.status.code(),
                                       absl::StrCat(file, ": ", prediction.status.message()));
    }
    predictions.push_back(std::move(prediction));
  }
  return predictions;
}

namespace {

std::string ClassLabel(const ClassScore& score) {
  return score.name.empty() ? absl::StrCat("class ", score.index) : score.name;
}

std::string ScoreJson(const ClassScore& score) {
  return absl::StrFormat(
      "\"index\": %d, %s\"probability\": %.6g", score.index,
      score.name.empty() ? "" : absl::StrCat("\"class\": ", JsonString(score.name), ", "),
      score.probability);
}

}  // namespace

std::string FormatImagePredictionsText(const std::vector<ImagePrediction>& predictions,
                                       bool names_known) {
  std::string out;
  if (!names_known) {
    out +=
        "note: the model carries no class names (its training did not report any); classes "
        "are shown by number\n";
  }
  for (const ImagePrediction& p : predictions) {
    if (!p.status.ok()) {
      absl::StrAppend(&out, p.file, ": error: ", p.status.message(), "\n");
      continue;
    }
    std::vector<std::string> top;
    for (const ClassScore& s : p.top)
      top.push_back(absl::StrFormat("%s %.4f", ClassLabel(s), s.probability));
    absl::StrAppendFormat(&out, "%s: %s (p=%.4f)\n  top-%d: %s\n", p.file, ClassLabel(p.top[0]),
                          p.top[0].probability, p.top.size(), absl::StrJoin(top, ", "));
  }
  return out;
}

std::string FormatImagePredictionsJson(const std::vector<ImagePrediction>& predictions,
                                       bool names_known, int64_t global_step,
                                       absl::string_view weights) {
  std::vector<std::string> items;
  for (const ImagePrediction& p : predictions) {
    if (!p.status.ok()) {
      items.push_back(absl::StrCat("  {\"file\": ", JsonString(p.file),
                                   ", \"error\": ", JsonString(p.status.message()), "}"));
      continue;
    }
    std::vector<std::string> top;
    for (const ClassScore& s : p.top) top.push_back(absl::StrCat("{", ScoreJson(s), "}"));
    items.push_back(absl::StrCat("  {\"file\": ", JsonString(p.file), ", ", ScoreJson(p.top[0]),
                                 ", \"top\": [", absl::StrJoin(top, ", "), "]}"));
  }
  return absl::StrFormat(
      "{\"global_step\": %d, \"weights\": %s, \"class_names_known\": %s, \"predictions\": "
      "[\n%s\n]}\n",
      global_step, JsonString(weights), names_known ? "true" : "false",
      absl::StrJoin(items, ",\n"));
}

}  // namespace mobilenet
