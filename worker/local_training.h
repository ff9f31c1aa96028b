// Single-process training: the worker's training loop against an in-process parameter
// server (the same core mobilenet-ps runs, behind the same ParameterClient interface),
// with checkpoints, evaluation and ONNX export.
#ifndef MOBILENET_WORKER_LOCAL_TRAINING_H_
#define MOBILENET_WORKER_LOCAL_TRAINING_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/architecture.h"
#include "parameter_server/core/parameter_shard.h"
#include "worker/trainer.h"
#include "worker/training_data.h"

namespace mobilenet {

struct LocalTrainingOptions {
  MobileNetConfig model;           // num_classes/input_channels are taken from the data
  ParameterShardConfig store;      // seed, optimizer, learning-rate schedule (examples per
                                   // epoch filled in from the data)
  TrainerConfig trainer;
  // The training and test data as opened by OpenTrainingData (worker/training_data.h) for
  // this model; the model's num_classes are the data's. Required unless synthetic.
  std::shared_ptr<TrainingData> data;
  bool synthetic = false;          // random data of the model's shape instead
  int synthetic_classes = 10;
  int64_t synthetic_examples = 10000;  // per epoch
  uint64_t data_seed = 1;              // of the synthetic data
  int threads = 2;
  std::string checkpoint_dir;      // empty: no checkpoints
  int keep_checkpoints = 3;
  std::string export_onnx;         // empty: no export
  bool quiet = false;              // no progress line
  // When *stop becomes true (e.g. on SIGTERM), training ends after the step in progress
  // and a checkpoint is written; not owned, may be null.
  const std::atomic<bool>* stop = nullptr;
  // The model's class names (index i names class i), reported with the evaluations so the
  // checkpoints carry them; empty: unknown.
  std::vector<std::string> class_names;
};

struct LocalTrainingResult {
  TrainingSummary summary;
  std::string checkpoint_path;     // the last one written, if any
  std::string onnx_path;
  WeightsKind onnx_weights = WeightsKind::kRaw;  // what it holds: the average when kept
  int64_t resumed_from_step = -1;  // >= 0 when a checkpoint was restored
};

// Loads the data, builds the model and the store (restoring the newest valid checkpoint
// of checkpoint_dir if there is one), trains, evaluates, writes the final checkpoint and
// the ONNX model. Errors name the failing part (data file, checkpoint, ...).
absl::StatusOr<LocalTrainingResult> RunLocalTraining(const LocalTrainingOptions& options);

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_LOCAL_TRAINING_H_
