#include "worker/local_training.h"

#include <cmath>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "model/layers/compute_threads.h"
#include "model/mobilenet_v1.h"
#include "parameter_server/core/model_checkpoint.h"
#include "parameter_server/core/parameter_server_core.h"
#include "parameter_server/core/shard_checkpointer.h"
#include "parameter_server/core/sharding_plan.h"
#include "worker/batch_source.h"
#include "worker/data_shard.h"
#include "worker/idx_reader.h"
#include "worker/in_process_parameter_client.h"
#include "worker/model_export.h"
#include "worker/synthetic_source.h"

namespace mobilenet {
absl::StatusOr<LocalTrainingResult> RunLocalTraining(const LocalTrainingOptions& options) {
  LocalTrainingResult result;
  SetComputeThreads(options.threads);
  MobileNetConfig model_config = options.model;

  // Data.
  std::unique_ptr<BatchSource> synthetic_train;
  BatchSource* train = nullptr;  // synthetic_train's or options.data's
  std::unique_ptr<EvaluationSource> test;
  if (options.synthetic) {
    SyntheticConfig synthetic;
    synthetic.shape = {model_config.resolution, model_config.resolution,
                       model_config.input_channels};
    synthetic.num_classes = options.synthetic_classes;
    synthetic.seed = options.data_seed;
    synthetic.examples_per_epoch = options.synthetic_examples;
    model_config.num_classes = options.synthetic_classes;
    ASSIGN_OR_RETURN(synthetic_train, SyntheticBatchSource::Create(synthetic));
    train = synthetic_train.get();
  } else {
    if (options.data == nullptr || options.data->train == nullptr) {
      return absl::InvalidArgumentError("local training: no training data");
    }
    model_config.num_classes = options.data->num_classes();
    train = options.data->train.get();
    if (options.data->make_test_reader) {
      ASSIGN_OR_RETURN(test, options.data->make_test_reader());
    }
  }

  // Model and the in-process parameter server: the same core mobilenet-ps runs, as the
  // one server of a one-worker cluster, with its checkpoint series "ckpt".
  ASSIGN_OR_RETURN(std::unique_ptr<MobileNetV1> model, MobileNetV1::Create(model_config));
  ParameterShardConfig store = options.store;
  store.learning_rate.examples_per_epoch = train->examples_per_epoch();
  ASSIGN_OR_RETURN(const ShardingPlan plan, ShardingPlan::Create(model_config, 1));
  CoreOptions core_options;
  core_options.num_workers = 1;
  ASSIGN_OR_RETURN(std::unique_ptr<ParameterServerCore> core,
                   ParameterServerCore::Create(plan, store, core_options));
  std::unique_ptr<ShardCheckpointer> checkpointer;
  if (!options.checkpoint_dir.empty()) {
    ShardCheckpointerOptions checkpoints;
    checkpoints.directory = options.checkpoint_dir;
    checkpoints.prefix = "ckpt";
    checkpoints.keep_last = options.keep_checkpoints;
    checkpointer = std::make_unique<ShardCheckpointer>(
        core.get(),
        ModelShardCheckpointCodec(model_config, plan, OptimizerKindName(store.optimizer.kind), 0),
        checkpoints);
    ASSIGN_OR_RETURN(const RestoredShardCheckpoint restored, checkpointer->Restore());
    for (const std::string& note : restored.set_aside) fprintf(stderr, "refused %s\n", note.c_str());
    if (!restored.path.empty()) {
      result.resumed_from_step = restored.step;
      printf("Resumed from %s (step %lld, %lld examples seen)\n", restored.path.c_str(),
             static_cast<long long>(restored.step), static_cast<long long>(restored.examples_seen));
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<InProcessParameterClient> client,
                   InProcessParameterClient::Create(plan, {core.get()}, /*worker_id=*/0));

  auto save = [&]() -> absl::Status {
    if (checkpointer == nullptr) return absl::OkStatus();
    ASSIGN_OR_RETURN(const SavedShardCheckpoint saved, checkpointer->Save());
    result.checkpoint_path = saved.path;
    return absl::OkStatus();
  };

  TrainerConfig trainer_config = options.trainer;
  if (result.resumed_from_step >= 0) {
    // The one worker's progress is the server's: continue its data where it ended.
    const int64_t done = core->shard().examples_seen();
    trainer_config.epochs =
        std::max(0.0, trainer_config.epochs - static_cast<double>(done) / train->examples_per_epoch());
    train->SkipTo(done);
  }
  ProgressReporter reporter(stdout, ProgressReporter::IsTerminal(stdout), absl::Seconds(10));
  Trainer trainer(trainer_config, model.get(), client.get(), train, test.get(),
                  options.quiet ? nullptr : &reporter);
  trainer.set_epoch_callback([&](int) { return save(); });
  // The evaluations (and class names) reach the checkpoints as a cluster's chief reports them.
  trainer.set_evaluation_callback([&](const EvaluationResult& eval) {
    EvaluationResult named = eval;
    named.class_names = options.class_names;
    const absl::Status reported = client->ReportEvaluation(/*worker_id=*/0, named);
    if (!reported.ok()) {
      fprintf(stderr, "could not record evaluation: %s\n", reported.ToString().c_str());
    }
  });
  trainer.set_stop_flag(options.stop);
  ASSIGN_OR_RETURN(result.summary, trainer.Run());
  RETURN_IF_ERROR(save());

  if (!options.export_onnx.empty()) {
    result.onnx_weights = ExportedWeights(trainer_config.evaluate_weight_average);
    RETURN_IF_ERROR(ExportModelFromServers(*model, *client, result.onnx_weights,
                                           options.export_onnx, options.class_names)
                        .status());
    result.onnx_path = options.export_onnx;
  }
  return result;
}

}  // namespace mobilenet
