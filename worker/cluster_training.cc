#include "worker/cluster_training.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "model/layers/compute_threads.h"
#include "model/mobilenet_v1.h"
#include "parameter_server/core/parameter_shard.h"
#include "parameter_server/core/sharding_plan.h"
#include "worker/batch_source.h"
#include "worker/data_shard.h"
#include "worker/evaluation_reader.h"
#include "worker/evaluator.h"
#include "worker/idx_reader.h"
#include "worker/leased_batch_source.h"
#include "worker/model_export.h"
#include "worker/synthetic_source.h"

namespace mobilenet {
namespace {

// A line on stdout that does not fight the in-place progress line on a terminal.
void PrintLine(const std::string& line) {
  static const bool terminal = isatty(fileno(stdout)) == 1;
  printf("%s%s\n", terminal ? "\r\033[K" : "", line.c_str());
  fflush(stdout);
}

// Tells the servers this worker's cumulative steps and recent images/s with every push:
// a BatchSource decorator, since the Trainer draws exactly one batch per step.
class ProgressPublishingSource : public ForwardingBatchSource {
 public:
  ProgressPublishingSource(BatchSource* source, ParameterClient* client, int64_t steps_before)
      : ForwardingBatchSource(source), client_(client), steps_(steps_before) {}

  absl::Status NextBatch(int batch_size, float* images, int* labels) override {
    RETURN_IF_ERROR(inner()->NextBatch(batch_size, images, labels));
    const absl::Time now = absl::Now();
    examples_ += batch_size;
    ++steps_;
    window_.push_back({now, examples_});
    while (window_.size() > 2 && now - window_.front().first > absl::Seconds(10)) {
      window_.pop_front();
    }
    const double span = absl::ToDoubleSeconds(now - window_.front().first);
    const double rate = span > 0 ? (examples_ - window_.front().second) / span : 0;
    client_->set_progress(rate, steps_);
    return absl::OkStatus();
  }

 private:
  ParameterClient* client_;
  int64_t steps_;
  int64_t examples_ = 0;
  std::deque<std::pair<absl::Time, int64_t>> window_;
};

struct Data {
  std::unique_ptr<BatchSource> synthetic_train;
  BatchSource* train = nullptr;  // synthetic_train's or options.data's
  // The chief's: makes the readers of the test set; empty otherwise.
  std::function<absl::StatusOr<std::unique_ptr<EvaluationSource>>()> make_test_reader;
};

// This worker's shard of the training data (and the test set, for the chief).
absl::StatusOr<Data> LoadData(const ClusterTrainingOptions& options, MobileNetConfig& model) {
  Data data;
  const int task = options.cluster.task_index;
  const int workers = options.cluster.num_workers();
  if (options.synthetic && options.max_workers > 0) {
    return absl::InvalidArgumentError(
        "elastic workers (--max_workers) lease blocks of a data set: not with synthetic data");
  }
  if (options.synthetic) {
    SyntheticConfig synthetic;
    synthetic.shape = {model.resolution, model.resolution, model.input_channels};
    synthetic.num_classes = options.synthetic_classes;
    synthetic.seed = options.data_seed + static_cast<uint64_t>(task);
    synthetic.examples_per_epoch = std::max<int64_t>(1, options.synthetic_examples / workers);
    model.num_classes = options.synthetic_classes;
    ASSIGN_OR_RETURN(data.synthetic_train, SyntheticBatchSource::Create(synthetic));
    data.train = data.synthetic_train.get();
    return data;
  }
  if (options.data == nullptr || (options.max_workers > 0 ? !options.data->make_block_source
                                                          : options.data->train == nullptr)) {
    return absl::InvalidArgumentError("cluster training: no training data");
  }
  model.num_classes = options.data->num_classes();
  data.train = options.data->train.get();
  if (options.max_workers > 0) data.train = nullptr;  // leased: made once connected
  if (options.cluster.is_chief()) data.make_test_reader = options.data->make_test_reader;
  return data;
}

// How much of this worker's share was trained before it (re)joined, from the servers'
// ledgers: the examples of its pushes they applied (the largest count: a server restored
// from an older checkpoint lost some, and they are not repeated), plus an equal part of
// the progress no worker record holds (restored from a checkpoint of another cluster
// size or one that kept no per-worker progress).
struct EarlierProgress {
  int64_t own_pushes = 0;
  int64_t own_examples = 0;
  int64_t unattributed_examples = 0;  // this worker's part
  int64_t examples() const { return own_examples + unattributed_examples; }
};

EarlierProgress ProgressBefore(const std::vector<ps::v1::StatusResponse>& statuses,
                               int32_t worker_id, int num_workers) {
  EarlierProgress progress;
  int64_t unattributed = -1;
  for (const ps::v1::StatusResponse& status : statuses) {
    for (const ps::v1::WorkerStatus& w : status.workers()) {
      if (w.worker_id() != worker_id) continue;
      progress.own_pushes = std::max(progress.own_pushes, w.pushes());
      progress.own_examples = std::max(progress.own_examples, w.examples());
    }
    unattributed = unattributed < 0 ? status.examples_unattributed()
                                    : std::min(unattributed, status.examples_unattributed());
  }
  progress.unattributed_examples = std::max<int64_t>(0, unattributed) / std::max(1, num_workers);
  return progress;
}

// Whether the servers that answer still hold global step `step` (the step of an
// evaluation). Asynchronous: their smallest step (a server restored from an older
// checkpoint stays behind for good). Synchronous: every server's, since server 0 closes a
// step before the others apply it (when a pull relays the decision), so a step closed
// after the evaluation shows on server 0 only.
bool ServersAt(ParameterClient& client, int64_t step, bool sync_replicas) {
  int64_t smallest = -1;
  for (const absl::StatusOr<ps::v1::StatusResponse>& status : client.GetStatus()) {
    if (!status.ok()) continue;
    if (sync_replicas && status->global_step() != step) return false;
    smallest = smallest < 0 ? status->global_step() : std::min(smallest, status->global_step());
  }
  return smallest < 0 || smallest == step;
}

// Workers other than `self` that the servers saw within `liveness` and that have not
// finished.

std::set<int32_t> LiveUnfinishedWorkers(
    const std::vector<absl::StatusOr<ps::v1::StatusResponse>>& statuses, int32_t self,
    absl::Duration liveness) {
  std::map<int32_t, std::pair<double, bool>> seen;  // id -> (freshest seconds, finished)
  for (const auto& status : statuses) {
    if (!status.ok()) continue;
    for (const ps::v1::WorkerStatus& w : status->workers()) {
      if (w.seconds_since_last_seen() < 0) continue;  // not heard from since that server started
      auto [it, inserted] = seen.try_emplace(w.worker_id(), w.seconds_since_last_seen(), false);
      it->second.first = std::min(it->second.first, w.seconds_since_last_seen());
      it->second.second = it->second.second || w.finished();
    }
  }
  std::set<int32_t> live;
  for (const auto& [id, record] : seen) {
    if (id != self && !record.second && record.first < absl::ToDoubleSeconds(liveness)) {
      live.insert(id);
    }
  }
  return live;
}

std::string DescribeEvaluation(const EvaluationResult& eval) {
  return absl::StrCat(
      absl::StrFormat("test accuracy %.2f%% (%d/%d), test loss %.4f at global step %d",
                      100 * eval.accuracy(), eval.correct, eval.examples, eval.loss,
                      eval.global_step),
      eval.average.examples > 0 ? absl::StrCat("; weight average: ", FormatTestScore(eval.average))
                                : "");
}

// The chief's evaluations every `every` on a thread of its own (with its own model and
// test reader, sharing the thread-safe client), each handed to `report`.
class PeriodicEvaluator {
 public:
  PeriodicEvaluator(absl::Duration every, std::unique_ptr<MobileNetV1> model,
                    std::unique_ptr<EvaluationSource> reader, ParameterClient* client,
                    int batch_size, bool with_average,
                    std::function<void(const EvaluationResult&)> report)
      : every_(every),
        model_(std::move(model)),
        reader_(std::move(reader)),
        evaluator_(model_.get(), client, reader_.get(), batch_size, with_average),
        report_(std::move(report)),
        thread_([this]() { Loop(); }) {}
  ~PeriodicEvaluator() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }

 private:
  void Loop() {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stop_), every_);
        if (stop_) return;
      }
      absl::StatusOr<EvaluationResult> eval = evaluator_.Evaluate();
      if (eval.ok()) {
        report_(*eval);
      } else {
        PrintLine(absl::StrCat("evaluation failed: ", eval.status().ToString()));
      }
    }
  }

  const absl::Duration every_;
  std::unique_ptr<MobileNetV1> model_;
  std::unique_ptr<EvaluationSource> reader_;
  Evaluator evaluator_;
  const std::function<void(const EvaluationResult&)> report_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// The leased-data source of an elastic worker (options.max_workers > 0): the data set cut
// into blocks of about data_block_examples, trained trainer.epochs epochs.
absl::StatusOr<std::unique_ptr<LeasedBatchSource>> MakeLeasedSource(
    const ClusterTrainingOptions& options, ParameterClient* client) {
  const double epochs = options.trainer.epochs;
  if (epochs < 1 || epochs != std::floor(epochs) || epochs > 1e6) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "elastic workers (--max_workers) train whole epochs of the data set: --epochs=%g", epochs));
  }
  if (options.data_block_examples < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--data_block_examples=%d: must be >= 1", options.data_block_examples));
  }
  const int64_t examples = options.data->train_examples;
  LeasedDataOptions leased;
  leased.plan.set_num_examples(examples);
  leased.plan.set_blocks_per_epoch(static_cast<int32_t>(std::max<int64_t>(
      1, (examples + options.data_block_examples - 1) / options.data_block_examples)));
  leased.plan.set_epochs(static_cast<int32_t>(epochs));
  leased.plan.set_seed(options.data_seed);
  // Progress and the chief's evaluation cadence in the nominal share of --worker_hosts.
  leased.examples_per_epoch = std::max<int64_t>(1, examples / options.cluster.num_workers());
  leased.stop = options.stop;
  const int32_t worker_id = options.cluster.task_index;
  const ps::v1::DataPlan plan = leased.plan;
  return LeasedBatchSource::Create(
      [client, worker_id, plan](const std::vector<ps::v1::DataBlock>& completed,
                                const std::vector<ps::v1::DataBlock>& held) {
        return client->LeaseData(worker_id, plan, completed, held);
      },
      options.data->make_block_source, options.data->output_shape, options.data->num_classes(),
      leased);
}

}  // namespace

absl::StatusOr<ClusterTrainingResult> RunClusterTraining(const ClusterTrainingOptions& options,
                                                         const ConnectToServers& connect) {
  const ClusterSpec& cluster = options.cluster;
  if (cluster.job != JobName::kWorker) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster training runs workers; this task is ", cluster.Describe()));
  }
  if (options.trainer.batch_size < 1 || options.trainer.batch_size > kMaxExamplesPerPush) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "batch size %d; the parameter servers take 1 to %d examples per push",
        options.trainer.batch_size, kMaxExamplesPerPush));
  }
  const int32_t worker_id = cluster.task_index;
  ClusterTrainingResult result;
  result.chief = cluster.is_chief();
  SetComputeThreads(options.threads);

  MobileNetConfig model_config = options.model;
  ASSIGN_OR_RETURN(Data data, LoadData(options, model_config));
  ASSIGN_OR_RETURN(std::unique_ptr<MobileNetV1> model, MobileNetV1::Create(model_config));
  ASSIGN_OR_RETURN(ShardingPlan plan, ShardingPlan::Create(model_config, cluster.num_ps()));
  ASSIGN_OR_RETURN(std::unique_ptr<ParameterClient> client, connect(plan));

  // Join: wait for the servers (the client retries; a server of another plan ends it at
  // once), and learn from their ledgers how much of this worker's share is done.
  ASSIGN_OR_RETURN(const std::vector<ps::v1::StatusResponse> statuses, AllStatuses(*client));
  const bool elastic = options.max_workers > 0;
  for (const ps::v1::StatusResponse& status : statuses) {
    if (status.max_workers() != options.max_workers) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "parameter server %d was started with --max_workers=%d; this worker with %d: give "
          "every process the same --max_workers",
          status.shard_index(), status.max_workers(), options.max_workers));
    }
    const int members = elastic ? options.max_workers : cluster.num_workers();
    if (status.num_workers() != members) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "parameter server %d serves a cluster of %d workers; this worker was told of %d: "
          "start every process with the same --worker_hosts",
          status.shard_index(), status.num_workers(), members));
    }
  }
  std::unique_ptr<LeasedBatchSource> leased;
  if (elastic) {
    ASSIGN_OR_RETURN(leased, MakeLeasedSource(options, client.get()));
    data.train = leased.get();
  }
  const int64_t per_epoch = data.train->examples_per_epoch();
  TrainerConfig trainer_config = options.trainer;
  trainer_config.worker_id = worker_id;
  // The servers decide whether there is a weight average to evaluate (their
  // --weight_ema_decay); a worker started with another value only gets a note, rather
  // than a chief whose every evaluation fails or that ignores the average.
  const bool servers_average =
      std::all_of(statuses.begin(), statuses.end(),
                  [](const ps::v1::StatusResponse& s) { return s.weight_ema_decay() > 0; });
  if (servers_average != trainer_config.evaluate_weight_average && worker_id == 0) {
    PrintLine(absl::StrFormat(
        "Note: the parameter servers keep %s weight average, but this worker's "
        "--weight_ema_decay says otherwise; evaluating %s",
        servers_average ? "a" : "no", servers_average ? "both" : "the weights only"));
  }
  trainer_config.evaluate_weight_average = servers_average;
  // Leased data: where the run's data stands is server 0's to say.
  const EarlierProgress before =
      elastic ? EarlierProgress{} : ProgressBefore(statuses, worker_id, cluster.num_workers());
  const int64_t share = static_cast<int64_t>(std::llround(trainer_config.epochs * per_epoch));
  result.examples_before = before.examples();
  const int64_t remaining = std::max<int64_t>(0, share - result.examples_before);
  if (!elastic) {
    trainer_config.epochs = static_cast<double>(remaining) / per_epoch;
    // Continue this worker's data where its applied pushes end.
    data.train->SkipTo(std::min(result.examples_before, share));
  }
  result.epochs = trainer_config.epochs;
  if (elastic) {
    PrintLine(absl::StrFormat(
        "Joined as elastic worker %d of at most %d: training the data blocks parameter server "
        "0 leases (%d examples in %d blocks an epoch, %d epochs); cluster at global step %d",
        worker_id, options.max_workers, options.data->train_examples,
        leased->plan().blocks_per_epoch(), leased->plan().epochs(), GlobalStep(statuses)));
  } else {
    PrintLine(absl::StrFormat(
        "Joined as %s: shard of %d examples, %.3g epoch(s) of it to train%s; cluster at global "
        "step %d",
        cluster.Describe(), per_epoch, trainer_config.epochs,
        absl::StrCat(
            before.own_examples > 0
                ? absl::StrFormat(" (%d examples in %d steps were pushed by an earlier run)",
                                  before.own_examples, before.own_pushes)
                : "",
            before.unattributed_examples > 0
                ? absl::StrFormat(" (%d examples counted as done: the servers restored "
                                  "progress no worker record holds)",
                                  before.unattributed_examples)
                : ""),
        GlobalStep(statuses)));
  }

  // The chief's test set: one reader for the training thread, one for the timed evaluator.
  std::unique_ptr<EvaluationSource> test;
  if (data.make_test_reader) {
    ASSIGN_OR_RETURN(test, data.make_test_reader());
  }
  ParameterClient* const servers = client.get();
  auto report = [servers, worker_id, &options](const EvaluationResult& eval) {
    EvaluationResult named = eval;
    named.class_names = options.class_names;
    absl::Status reported = servers->ReportEvaluation(worker_id, named);
    if (!reported.ok()) {
      PrintLine(absl::StrCat("could not report evaluation: ", reported.ToString()));
    }
  };

  ProgressPublishingSource source(data.train, client.get(), before.own_pushes);
  ProgressReporter reporter(stdout, ProgressReporter::IsTerminal(stdout), absl::Seconds(10));
  Trainer trainer(trainer_config, model.get(), client.get(), &source, test.get(),
                  options.quiet ? nullptr : &reporter);
  trainer.set_evaluation_callback(report);
  trainer.set_stop_flag(options.stop);
  if (options.on_step) trainer.set_step_callback(options.on_step);

  std::unique_ptr<PeriodicEvaluator> timed;
  if (test != nullptr && options.eval_every_secs > 0) {
    ASSIGN_OR_RETURN(std::unique_ptr<MobileNetV1> eval_model, MobileNetV1::Create(model_config));
    ASSIGN_OR_RETURN(std::unique_ptr<EvaluationSource> eval_reader, data.make_test_reader());
    timed = std::make_unique<PeriodicEvaluator>(
        absl::Seconds(options.eval_every_secs), std::move(eval_model), std::move(eval_reader),
        client.get(), trainer_config.eval_batch_size, trainer_config.evaluate_weight_average,
        [report](const EvaluationResult& eval) {
          report(eval);
          PrintLine(absl::StrCat("timed evaluation: ", DescribeEvaluation(eval)));
        });
  }

  if (elastic || remaining > 0) {  // leased data: until server 0 says it is done
    ASSIGN_OR_RETURN(result.summary, trainer.Run());
  } else if (test != nullptr) {
    ASSIGN_OR_RETURN(result.summary.final_evaluation, trainer.Evaluate());
  }
  timed.reset();
  if (leased != nullptr) {
    result.epochs = static_cast<double>(result.summary.examples) / per_epoch;
    PrintLine(absl::StrFormat("Trained %d leased data blocks (%d examples)",
                              leased->blocks_completed(), result.summary.examples));
  }
  if (result.summary.stopped && leased != nullptr) {
    result.stopped = true;
    PrintLine(
        "Stopped on request; the block in progress goes back to parameter server 0 "
        "(leased again to the next worker that asks once this one is not heard from)");
    return result;
  }
  if (result.summary.stopped) {
    result.stopped = true;
    PrintLine(absl::StrFormat(
        "Stopped on request after %d steps: %d of this worker's %d examples are done (%.3g of "
        "%.3g epochs of its shard); started again, it resumes from there",
        result.summary.steps, result.examples_before + result.summary.examples, share,
        static_cast<double>(result.examples_before + result.summary.examples) / per_epoch,
        static_cast<double>(share) / per_epoch));
    return result;
  }

  if (!result.chief) {
    RETURN_IF_ERROR(client->Finish(worker_id, /*training_complete=*/false));
    return result;
  }

  // The chief ends the training once the other live workers are done.
  const absl::Time wait_start = absl::Now();
  absl::Time last_note = absl::InfinitePast();
  bool waited = false;
  while (true) {
    if (options.stop != nullptr && options.stop->load()) {
      result.stopped = true;
      PrintLine("Stopped on request while waiting for the other workers; the training is not "
                "ended (a restarted chief ends it)");
      return result;
    }
    const std::set<int32_t> live =
        LiveUnfinishedWorkers(client->GetStatus(), worker_id, options.worker_liveness);
    if (live.empty()) break;
    if (absl::Now() - wait_start >= options.wait_for_workers) {
      PrintLine(absl::StrCat("stopped waiting for worker(s) ", absl::StrJoin(live, ", "),
                             " after ", absl::FormatDuration(options.wait_for_workers)));
      break;
    }
    if (absl::Now() - last_note >= absl::Seconds(30)) {
      PrintLine(absl::StrCat("waiting for worker(s) ", absl::StrJoin(live, ", "),
                             " to finish before ending the training"));
      last_note = absl::Now();
    }
    waited = true;
    absl::SleepFor(absl::Seconds(1));
  }
  // The final evaluation is of the final weights: evaluated again when pushes landed
  // after it (while the chief waited, or during its end-of-share evaluation), until every
  // server holds the evaluated step (a few tries: the others have finished).
  if (test != nullptr) {
    for (int tries = 0; tries < 3; ++tries) {
      const bool current = !waited && result.summary.final_evaluation.examples > 0 &&
                           ServersAt(*client, result.summary.final_evaluation.global_step,
                                     trainer_config.sync_replicas);
      if (current) break;
      ASSIGN_OR_RETURN(result.summary.final_evaluation, trainer.Evaluate());
      waited = false;
    }
  }

  if (!options.export_onnx.empty()) {
    result.onnx_weights = ExportedWeights(trainer_config.evaluate_weight_average);
    RETURN_IF_ERROR(ExportModelFromServers(*model, *client, result.onnx_weights,
                                           options.export_onnx, options.class_names)
                        .status());
    result.onnx_path = options.export_onnx;
  }
  RETURN_IF_ERROR(client->Finish(worker_id, /*training_complete=*/true));
  return result;
}

}  // namespace mobilenet
