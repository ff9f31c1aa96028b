// The worker's training loop: pull the weights, compute a batch's gradients, push them,
// repeat, without waiting for other workers. Transport-free: it talks to a
// ParameterClient (in-process or gRPC) and reads batches from a BatchSource.
#ifndef MOBILENET_WORKER_TRAINER_H_
#define MOBILENET_WORKER_TRAINER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/gradient_ops.h"
#include "model/mobilenet_v1.h"
#include "worker/batch_source.h"
#include "worker/evaluation_reader.h"
#include "worker/evaluator.h"
#include "worker/parameter_client.h"
#include "worker/progress_reporter.h"

namespace mobilenet {

struct TrainerConfig {
  int32_t worker_id = 0;
  int batch_size = 64;
  double epochs = 10;           // of this worker's shard; the loop ends after them
  float label_smoothing = 0.1f;
  float weight_decay = 4e-5f;   // L2 on conv and fully-connected weights (not depthwise)
  float clip_norm = 2.0f;       // clip by global norm; <= 0 disables
  // Evaluate on the test set every this many epochs (<= 0: only at the end) when an
  // evaluation reader is given (the chief).
  double eval_every_epochs = 1;
  int eval_batch_size = 256;
  // Also evaluate the servers' weight average (they keep one: --weight_ema_decay > 0).
  bool evaluate_weight_average = false;
  // Overlap communication with computation: while a step computes, a helper thread pushes
  // the previous step's gradients and then pulls the weights for the next one, so a
  // gradient is computed from weights that lack this worker's latest push (one more step
  // of staleness). Off: pull, compute, push in turn.
  bool overlap_communication = false;
  // --sync_replicas: after a push server 0 counted, the next pull waits for the step it
  // closes (polling server 0, which never holds a call open), so every step computes
  // from the weights of the step before. Turns overlap_communication off.
  bool sync_replicas = false;
};

// Where one step's time went (see Trainer::set_step_callback). With
// overlap_communication the waits are only the time the step was blocked on the previous
// step's exchange: before its push was answered counts as push wait, after as pull wait.
struct StepTiming {
  absl::Duration compute;    // reading the batch, forward, backward, gradient checks
  absl::Duration pull_wait;  // blocked on pulling weights
  absl::Duration push_wait;  // blocked on pushing gradients
  float loss = 0;            // the batch's training loss
  int examples = 0;          // in the batch
};

struct TrainingSummary {
  int64_t steps = 0;
  int64_t examples = 0;
  double seconds = 0;
  double images_per_sec = 0;
  double final_loss = 0;     // recent training loss
  EvaluationResult final_evaluation;  // examples == 0 when not evaluated
  bool stopped = false;      // ended early by the stop flag (see set_stop_flag)
};

// Not thread-safe: one Trainer per training thread.
class Trainer {
 public:
  // `model`, `client`, `train` are not owned and must outlive the trainer; `test` and
  // `reporter` may be null (no evaluation; no progress output).
  Trainer(const TrainerConfig& config, MobileNetV1* model, ParameterClient* client,
          BatchSource* train, EvaluationSource* test, ProgressReporter* reporter);
  // Waits for communication still in flight (its outcome is dropped).
  ~Trainer();

  // Called after each completed epoch of this worker (e.g. to write a checkpoint), with
  // the epoch number (1-based); an error stops training and is returned by Run.
  void set_epoch_callback(std::function<absl::Status(int epoch)> callback) {
    epoch_callback_ = std::move(callback);
  }
  // Called with each evaluation result.
  void set_evaluation_callback(std::function<void(const EvaluationResult&)> callback) {
    evaluation_callback_ = std::move(callback);
  }
  // Called after each completed step with where its time went (e.g. for metrics).
  void set_step_callback(std::function<void(const StepTiming&)> callback) {
    step_callback_ = std::move(callback);
  }
  // When *stop becomes true (e.g. set from a SIGTERM), Run ends after the step in
  // progress: that step's gradients are pushed whole (a gradient is never pushed
  // half-computed), communication in flight is waited for, and the summary says
  // stopped. Not owned; may be null.
  void set_stop_flag(const std::atomic<bool>* stop) { stop_ = stop; }

  // Trains config.epochs epochs (or until the stop flag); evaluates at the end when a
  // test reader was given and training was not stopped. Errors: the client's (after its
  // own retries), the batch source's, or a non-finite gradient (InvalidArgument naming
  // the tensor).
  absl::StatusOr<TrainingSummary> Run();

  // One step: pull, forward/backward, push. Returns the training loss. A push refused as
  // too stale (Aborted) is not an error: it is counted in rejected_pushes(). With
  // overlap_communication the push (and the pull of the next weights) is started on a
  // helper thread and finishes during the next step or in Flush(); an error of that
  // communication is returned by the call that waits for it.
  absl::StatusOr<TrainStepResult> Step();

  // Waits for the communication a Step left running (overlap_communication); a no-op
  // otherwise. Run calls it before returning.
  absl::Status Flush();

  // Pushes the parameter servers refused as too stale (Aborted); their gradients were
  // dropped and training went on with fresh weights.
  int64_t rejected_pushes() const { return rejected_pushes_; }

  // Pulls the current weights and moving statistics and evaluates the test set, and so
  // their average with evaluate_weight_average (the result also goes to the evaluation
  // callback). FailedPrecondition without a test set.
  absl::StatusOr<EvaluationResult> Evaluate();

 private:
  // What the helper thread of overlap_communication hands back.
  struct Exchange {
    absl::StatusOr<PushResult> pushed;
    absl::StatusOr<ModelVersion> pulled;
    absl::Time pushed_at;  // when the push was answered
  };

  // Reads the next batch and computes, from params_, the gradients into grads_[g] (with
  // weight decay, checked finite, clipped) and the batch statistics into batch_stats_[g]
  // (unbiased variances). Returns the batch's loss.
  absl::StatusOr<TrainStepResult> ComputeGradients(int g);
  // Counts a push's outcome: an Aborted refusal is dropped and counted, other errors are
  // returned.
  absl::Status RecordPush(const absl::StatusOr<PushResult>& pushed, absl::Duration took);
  PushRequest MakePush(int g, const ModelVersion& computed_from);
  // A training pull of params_; synchronous: once server 0 reached awaited_sync_step_
  // (asking again with a short backoff, and saying every 30 s that it waits).
  absl::StatusOr<ModelVersion> PullForStep();
  // Flush, adding the time blocked to `timing`'s waits when not null.
  absl::Status FlushInto(StepTiming* timing);

  TrainerConfig config_;
  MobileNetV1* model_;
  ParameterClient* client_;
  BatchSource* train_;
  std::unique_ptr<Evaluator> evaluator_;  // null without a test set
  ProgressReporter* reporter_;
  const std::atomic<bool>* stop_ = nullptr;
  std::function<absl::Status(int)> epoch_callback_;
  std::function<void(const EvaluationResult&)> evaluation_callback_;
  std::function<void(const StepTiming&)> step_callback_;

  std::vector<IndexRange> decay_ranges_;
  // The weights a step computes on; with overlap_communication also the ones being pulled
  // for the next step (next_params_), and two sets of gradients: one being pushed while
  // the other is computed.
  std::vector<float> params_, next_params_, state_, images_;
  std::vector<float> grads_[2], batch_stats_[2];
  std::vector<int> labels_;
  int grad_buffer_ = 0;          // the gradient set the next step computes into
  bool have_weights_ = false;    // params_ holds weights to compute on (overlap mode)
  ModelVersion params_version_;  // their version
  std::future<Exchange> in_flight_;  // overlap mode: the previous step's push and pull
  absl::Time in_flight_start_;
  // Starts at a random per-run base (high 32 bits), so the pushes of a restarted worker
  // are never taken by the servers for retries of its earlier run's pushes.
  uint64_t next_request_id_;
  int64_t steps_ = 0;
  int64_t rejected_pushes_ = 0;
  int64_t global_step_ = 0;
  // Synchronous: the step the last counted push closes (0: none to wait for).
  int64_t awaited_sync_step_ = 0;
  double last_staleness_ = 0;
  double last_push_ms_ = 0;
  float last_learning_rate_ = 0;
};

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_TRAINER_H_
