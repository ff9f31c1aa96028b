// Classifies image files (JPEG, PNG) with a trained model, as mobilenet-ctl predict --image
// does: each file is decoded into the model's channel count, given the evaluation
// preprocessing of training (ImagePredictionPreprocessing) and run through the network;
// the result is the softmax's top classes, named when the model's class names are known.
#ifndef MOBILENET_WORKER_IMAGE_PREDICTION_H_
#define MOBILENET_WORKER_IMAGE_PREDICTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "input/inception_preprocessing.h"
#include "model/mobilenet_v1.h"

namespace mobilenet {

// The evaluation preprocessing a model of `config` is fed, derived from its configuration
// (checkpoints do not record the training's preprocessing): the Inception evaluation path
// (central crop of 87.5% of each side, antialiased bilinear resize to resolution x
// resolution) and the training's default normalization: ImageNet's mean and standard
// deviation for 3 channels, Fashion-MNIST's for 1 channel.
InceptionPreprocessingConfig ImagePredictionPreprocessing(const MobileNetConfig& config);

struct ClassScore {
  int index = 0;
  std::string name;  // the class name, or empty when the names are unknown
  float probability = 0.0f;
};

struct ImagePrediction {
  std::string file;
  absl::Status status;          // not OK: the file could not be decoded (its message)
  std::vector<ClassScore> top;  // most probable first, top_k of them (fewer classes: all)
};

// Classifies every file of `files` with `net` (weights `params`, moving statistics
// `state`). `class_names` is empty or names every class. A file that cannot be read or
// decoded gets its error (naming the file) and the others are still classified.
// InvalidArgument (for all) when top_k < 1, class_names has another count than the
// model's classes, or the preprocessing cannot be built.
absl::StatusOr<std::vector<ImagePrediction>> PredictImages(
    MobileNetV1& net, const float* params, const float* state,
    const std::vector<std::string>& class_names, const std::vector<std::string>& files, int top_k);

// Text for a terminal, one block per file:
//   a.png: Sneaker (p=0.9312)
//     top-5: Sneaker 0.9312, Sandal 0.0400, ...
// or "a.png: error: <message>". Without class names, classes are shown as "class 7" and a
// first line says the model carries no class names.
std::string FormatImagePredictionsText(const std::vector<ImagePrediction>& predictions,
                                       bool names_known);

// {"global_step": S, "weights": "raw", "class_names_known": true, "predictions": [
//   {"file": "a.png", "index": 7, "class": "Sneaker", "probability": 0.93, "top": [
//     {"index": 7, "class": "Sneaker", "probability": 0.93}, ...]},
//   {"file": "b.png", "error": "..."}]}
// ("class" is absent when the names are unknown).
std::string FormatImagePredictionsJson(const std::vector<ImagePrediction>& predictions,
                                       bool names_known, int64_t global_step,
                                       absl::string_view weights);

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_IMAGE_PREDICTION_H_
