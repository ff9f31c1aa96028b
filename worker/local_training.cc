#include "worker/local_training.h"

#include <cmath>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/checkpoint_series.h"
#include "common/status_macros.h"
#include "model/layers/compute_threads.h"
#include "model/mobilenet_v1.h"
#include "model/onnx_export.h"
#include "worker/batch_source.h"
#include "worker/data_shard.h"
#include "worker/idx_reader.h"
#include "worker/in_process_parameter_client.h"
#include "parameter_server/model_checkpoint.h"
#include "worker/synthetic_source.h"

namespace mobilenet {
absl::StatusOr<LocalTrainingResult> RunLocalTraining(const LocalTrainingOptions& options) {
  LocalTrainingResult result;
  SetComputeThreads(options.threads);
  MobileNetConfig model_config = options.model;

  // Data.
  std::unique_ptr<BatchSource> train;
  std::unique_ptr<EvaluationReader> test;
  if (options.synthetic) {
    SyntheticConfig synthetic;
    synthetic.shape = {model_config.resolution, model_config.resolution,
                       model_config.input_channels};
    synthetic.num_classes = options.synthetic_classes;
    synthetic.seed = options.data_seed;
    synthetic.examples_per_epoch = options.synthetic_examples;
    model_config.num_classes = options.synthetic_classes;
    ASSIGN_OR_RETURN(train, SyntheticBatchSource::Create(synthetic));
  } else {
    ASSIGN_OR_RETURN(Dataset train_set, LoadFashionMnist(options.data_dir, DatasetSplit::kTrain));
    ASSIGN_OR_RETURN(Dataset test_set, LoadFashionMnist(options.data_dir, DatasetSplit::kTest));
    model_config.num_classes = train_set.num_classes();
    PreprocessingConfig pre;
    pre.output_height = pre.output_width = model_config.resolution;
    pre.output_channels = model_config.input_channels;
    pre.random_flip = options.random_flip;
    pre.crop_padding = options.crop_padding;
    auto train_data = std::make_shared<const Dataset>(std::move(train_set));
    ASSIGN_OR_RETURN(DataShard shard, DataShard::Whole(train_data->size(), options.data_seed));
    ASSIGN_OR_RETURN(train, ShardBatchSource::Create(train_data, shard, pre));
    ASSIGN_OR_RETURN(EvaluationReader reader,
                     EvaluationReader::Create(std::make_shared<const Dataset>(std::move(test_set)),
                                              pre, options.eval_examples));
    test = std::make_unique<EvaluationReader>(std::move(reader));
  }

  // Model and the in-process parameter store.
  ASSIGN_OR_RETURN(std::unique_ptr<MobileNetV1> model, MobileNetV1::Create(model_config));
  ParameterShardConfig store = options.store;
  store.learning_rate.examples_per_epoch = train->examples_per_epoch();
  ASSIGN_OR_RETURN(std::unique_ptr<ParameterShard> shard,
                   ParameterShard::Create(model->parameter_layout(), model->state_layout(),
                                          WholeModelShardSpec(model->parameter_layout(),
                                                              model->state_layout()),
                                          store));
  std::unique_ptr<CheckpointSeries> series;
  if (!options.checkpoint_dir.empty()) {
    series = std::make_unique<CheckpointSeries>(options.checkpoint_dir, "ckpt",
                                                options.keep_checkpoints);
    auto restored = series->RestoreLatest();
    if (restored.ok()) {
      for (const std::string& note : restored->skipped) fprintf(stderr, "skipped %s\n", note.c_str());
      ASSIGN_OR_RETURN(MobileNetConfig saved, GetModelConfig(restored->checkpoint, restored->path));
      if (saved.alpha != model_config.alpha || saved.resolution != model_config.resolution ||
          saved.input_channels != model_config.input_channels ||
          saved.num_classes != model_config.num_classes || saved.shallow != model_config.shallow) {
        return absl::FailedPreconditionError(absl::StrCat(
            restored->path, ": checkpoint is of another model configuration than the flags "
            "ask for; use another --checkpoint_dir"));
      }
      ASSIGN_OR_RETURN(ShardState state, CheckpointToShardState(restored->checkpoint));
      RETURN_IF_ERROR(shard->RestoreState(state));
      result.resumed_from_step = state.version;
      printf("Resumed from %s (step %lld, %lld examples seen)\n", restored->path.c_str(),
             static_cast<long long>(state.version), static_cast<long long>(state.examples_seen));
    } else if (!absl::IsNotFound(restored.status())) {
      return restored.status();
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<InProcessParameterClient> client,
                   InProcessParameterClient::Create(model->parameter_layout(),
                                                    model->state_layout(), {shard.get()}));

  auto save = [&]() -> absl::Status {
    if (series == nullptr) return absl::OkStatus();
    const ShardState state = shard->ExportState();
    Checkpoint checkpoint = ShardStateToCheckpoint(state, model_config, model->parameter_layout(),
                                                   model->state_layout());
    checkpoint.metadata["optimizer"] = OptimizerKindName(store.optimizer.kind);
    ASSIGN_OR_RETURN(result.checkpoint_path, series->Save(state.version, checkpoint));
    return absl::OkStatus();
  };

  TrainerConfig trainer_config = options.trainer;
  if (result.resumed_from_step >= 0) {
    const double done = static_cast<double>(shard->status().examples_seen) /
                        train->examples_per_epoch();
    trainer_config.epochs = std::max(0.0, trainer_config.epochs - done);
  }
  ProgressReporter reporter(stdout, ProgressReporter::IsTerminal(stdout), absl::Seconds(10));
  Trainer trainer(trainer_config, model.get(), client.get(), train.get(), test.get(),
                  options.quiet ? nullptr : &reporter);
  trainer.set_epoch_callback([&](int) { return save(); });
  ASSIGN_OR_RETURN(result.summary, trainer.Run());
  RETURN_IF_ERROR(save());

  if (!options.export_onnx.empty()) {
    std::vector<float> params(model->parameter_layout().total_size());
    std::vector<float> state(model->state_layout().total_size());
    RETURN_IF_ERROR(client->Pull(absl::MakeSpan(params), absl::MakeSpan(state)).status());
    ASSIGN_OR_RETURN(onnx::ModelProto onnx_model,
                     ExportOnnx(model->architecture(), model->parameter_layout(), params.data(),
                                model->state_layout(), state.data()));
    RETURN_IF_ERROR(WriteOnnx(options.export_onnx, onnx_model));
    result.onnx_path = options.export_onnx;
  }
  return result;
}

}  // namespace mobilenet
