#include "worker/trainer.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <iostream>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "model/layers/softmax_cross_entropy.h"
#include "worker/batch_statistics.h"
#include "worker/weight_decay.h"

namespace mobilenet {

Trainer::Trainer(const TrainerConfig& config, MobileNetV1* model, ParameterClient* client,
                 BatchSource* train, EvaluationSource* test, ProgressReporter* reporter)
    : config_(config),
      model_(model),
      client_(client),
      train_(train),
      evaluator_(test != nullptr
                     ? std::make_unique<Evaluator>(model, client, test, config.eval_batch_size,
                                                   config.evaluate_weight_average)
                     : nullptr),
      reporter_(reporter) {
  next_request_id_ = (static_cast<uint64_t>(std::random_device{}()) << 32) + 1;
  // A synchronous step computes from the weights of the step before, never ahead.
  if (config_.sync_replicas) config_.overlap_communication = false;
  decay_ranges_ = WeightDecayRanges(model_->parameter_layout());
  params_.resize(model_->parameter_layout().total_size());
  state_.resize(model_->state_layout().total_size());
  const int buffers = config_.overlap_communication ? 2 : 1;
  for (int g = 0; g < buffers; ++g) {
    grads_[g].resize(params_.size());
    batch_stats_[g].resize(state_.size());
  }
  if (config_.overlap_communication) next_params_.resize(params_.size());
  const ImageShape shape = train_->output_shape();
  images_.resize(static_cast<size_t>(config_.batch_size) * shape.elements());
  labels_.resize(config_.batch_size);
}

Trainer::~Trainer() {
  if (in_flight_.valid()) in_flight_.wait();
}

absl::StatusOr<TrainStepResult> Trainer::ComputeGradients(int g) {
  RETURN_IF_ERROR(train_->NextBatch(config_.batch_size, images_.data(), labels_.data()));
  const TrainStepResult result = model_->TrainStep(
      params_.data(), images_.data(), labels_.data(), config_.batch_size,
      config_.label_smoothing, grads_[g].data(), batch_stats_[g].data());
  std::vector<float>& grads = grads_[g];
  if (config_.weight_decay > 0) {
    AddWeightDecay(config_.weight_decay, decay_ranges_, params_, absl::MakeSpan(grads));
  }
  const int64_t bad = FindNonFinite(grads);
  if (bad >= 0) {
    for (const TensorView& v : model_->parameter_layout().views()) {
      if (bad >= v.offset && bad < v.offset + v.size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "gradient of ", v.name, "[", bad - v.offset, "] is ", grads[bad], " at step ",
            steps_, " (loss ", result.loss, "); lower the learning rate"));
      }
    }
  }
  if (config_.clip_norm > 0) ClipByGlobalNorm(config_.clip_norm, absl::MakeSpan(grads));
  RETURN_IF_ERROR(UnbiasBatchVariances(model_->architecture(), model_->state_layout(),
                                       config_.batch_size, absl::MakeSpan(batch_stats_[g])));
  return result;
}

PushRequest Trainer::MakePush(int g, const ModelVersion& computed_from) {
  PushRequest push;
  push.worker_id = config_.worker_id;
  push.request_id = next_request_id_++;
  push.computed_from = computed_from;
  push.example_count = config_.batch_size;
  push.gradients = grads_[g];
  push.batch_stats = batch_stats_[g];
  push.last_of_share = last_step_;
  return push;
}

absl::Status Trainer::RecordPush(const absl::StatusOr<PushResult>& pushed, absl::Duration took) {
  last_push_ms_ = absl::ToDoubleMilliseconds(took);
  if (absl::IsAborted(pushed.status())) {
    // Refused by the parameter servers' staleness policy: the gradient is dropped and
    // training goes on with fresh weights.
    ++rejected_pushes_;
    return absl::OkStatus();
  }
  if (!pushed.ok()) return pushed.status();
  last_staleness_ = static_cast<double>(pushed->max_staleness);
  last_learning_rate_ = pushed->learning_rate;
  global_step_ = pushed->version.global_step();
  return absl::OkStatus();
}

absl::Status Trainer::Flush() { return FlushInto(nullptr); }

absl::Status Trainer::FlushInto(StepTiming* timing) {
  if (!in_flight_.valid()) return absl::OkStatus();
  const absl::Time wait_start = absl::Now();
  Exchange done = in_flight_.get();
  if (timing != nullptr) {
    const absl::Duration waited = absl::Now() - wait_start;
    const absl::Duration push_wait =
        std::clamp(done.pushed_at - wait_start, absl::ZeroDuration(), waited);
    timing->push_wait += push_wait;
    timing->pull_wait += waited - push_wait;
  }
  // The push's own duration is not measured apart from the pull that follows it.
  RETURN_IF_ERROR(RecordPush(done.pushed, absl::Now() - in_flight_start_));
  RETURN_IF_ERROR(done.pulled.status());
  // The pulled weights become the next step's.
  params_.swap(next_params_);
  params_version_ = *std::move(done.pulled);
  have_weights_ = true;
  return absl::OkStatus();
}

absl::StatusOr<ModelVersion> Trainer::PullForStep() {
  const absl::Time start = absl::Now();
  absl::Time next_note = start + absl::Seconds(30);
  absl::Duration backoff = absl::Milliseconds(1);
  for (;;) {
    ASSIGN_OR_RETURN(ModelVersion version,
                     client_->Pull(absl::MakeSpan(params_), {}, WeightsKind::kRaw,
                                   PullPurpose::kTraining, awaited_sync_step_));
    if (version.sync_reached) return version;
    if (version.sync_step + 1 < awaited_sync_step_) {
      // Server 0 is behind the step this worker's gradients were counted for: it
      // restarted from an earlier checkpoint and they are gone. Go on from its step.
      awaited_sync_step_ = 0;
      continue;
    }
    if (stop_ != nullptr && stop_->load()) {
      return absl::CancelledError(absl::StrFormat(
          "stopped on request while waiting for synchronous step %d", awaited_sync_step_));
    }
    const absl::Time now = absl::Now();
    if (now >= next_note) {
      next_note = now + absl::Seconds(30);
      const std::string note = absl::StrFormat(
          "worker %d: waiting %.0f s for synchronous step %d (server 0 is at step %d; see "
          "mobilenet-ctl status for who is missing)",
          config_.worker_id, absl::ToDoubleSeconds(now - start), awaited_sync_step_,
          version.sync_step);
      if (reporter_ != nullptr) {
        reporter_->Line(note);
      } else {
        std::cerr << note << std::endl;
      }
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Milliseconds(20));
  }
}

absl::StatusOr<TrainStepResult> Trainer::Step() {
  StepTiming timing;
  timing.examples = config_.batch_size;
  absl::Time start = absl::Now();
  if (!config_.overlap_communication) {
    ASSIGN_OR_RETURN(ModelVersion version, PullForStep());
    timing.pull_wait = absl::Now() - start;
    start = absl::Now();
    ASSIGN_OR_RETURN(const TrainStepResult result, ComputeGradients(0));
    timing.compute = absl::Now() - start;
    start = absl::Now();
    const absl::StatusOr<PushResult> pushed = client_->Push(MakePush(0, version));
    timing.push_wait = absl::Now() - start;
    RETURN_IF_ERROR(RecordPush(pushed, timing.push_wait));
    if (version.sync_step >= 0) {
      global_step_ = version.sync_step;
      // Counted: wait for its step to close. Dropped (a backup too late): go on at once.
      awaited_sync_step_ = pushed.ok() && pushed->sync_pending ? version.sync_step + 1 : 0;
    }
    ++steps_;
    timing.loss = result.loss;
    if (step_callback_) step_callback_(timing);
    return result;
  }

  // Overlapped: compute on params_ while the previous step's gradients are pushed and
  // the next weights pulled into next_params_ (only the first step waits for a pull).
  if (!have_weights_) {
    ASSIGN_OR_RETURN(params_version_, client_->PullForTraining(absl::MakeSpan(params_)));
    have_weights_ = true;
    timing.pull_wait = absl::Now() - start;
  }
  const int g = grad_buffer_;
  start = absl::Now();
  ASSIGN_OR_RETURN(const TrainStepResult result, ComputeGradients(g));
  timing.compute = absl::Now() - start;
  const ModelVersion computed_from = params_version_;
  // Until the previous exchange ends, params_ (when it brought no new weights) stay the
  // next step's weights.
  RETURN_IF_ERROR(FlushInto(&timing));
  PushRequest push = MakePush(g, computed_from);
  in_flight_start_ = absl::Now();
  in_flight_ = std::async(std::launch::async, [this, push]() {
    Exchange exchange;
    exchange.pushed = client_->Push(push);
    exchange.pushed_at = absl::Now();
    exchange.pulled = client_->PullForTraining(absl::MakeSpan(next_params_));
    return exchange;
  });
  grad_buffer_ = 1 - g;
  ++steps_;
  timing.loss = result.loss;
  if (step_callback_) step_callback_(timing);
  return result;
}

absl::StatusOr<EvaluationResult> Trainer::Evaluate() {
  if (evaluator_ == nullptr) return absl::FailedPreconditionError("no test set to evaluate on");
  ASSIGN_OR_RETURN(const EvaluationResult eval, evaluator_->Evaluate());
  if (evaluation_callback_) evaluation_callback_(eval);
  return eval;
}

absl::StatusOr<TrainingSummary> Trainer::Run() {
  TrainingSummary summary;
  const int64_t per_epoch = train_->examples_per_epoch();
  const int64_t total_examples = static_cast<int64_t>(std::llround(config_.epochs * per_epoch));
  const int64_t start_seen = train_->examples_seen();
  const absl::Time start = absl::Now();

  // Recent-window averages for the progress line.
  struct Sample {
    absl::Time time;
    int64_t examples;
    double loss;
    int correct;
  };
  std::deque<Sample> window;
  double next_eval_epoch = config_.eval_every_epochs > 0 ? config_.eval_every_epochs : 1e300;
  int64_t last_epoch = train_->epoch();

  // Leased data (not endless) ends when the source says so, whatever config_.epochs says.
  const bool endless = train_->endless();
  while (!endless || train_->examples_seen() - start_seen < total_examples) {
    last_step_ =
        endless && train_->examples_seen() - start_seen + config_.batch_size >= total_examples;
    if (stop_ != nullptr && stop_->load()) {
      summary.stopped = true;
      break;
    }
    absl::StatusOr<TrainStepResult> stepped = Step();
    if (!endless && absl::IsOutOfRange(stepped.status())) break;  // the data is done
    if (!stepped.ok() && stop_ != nullptr && stop_->load()) {
      // The client gave up its retries because of the stop: not a failure.
      summary.stopped = true;
      break;
    }
    ASSIGN_OR_RETURN(TrainStepResult step, std::move(stepped));
    const absl::Time now = absl::Now();
    const int64_t done = train_->examples_seen() - start_seen;
    window.push_back({now, done, step.loss, step.correct});
    while (window.size() > 2 && now - window.front().time > absl::Seconds(10)) {
      window.pop_front();
    }
    if (reporter_ != nullptr) {
      ProgressSnapshot snap;
      snap.epoch = static_cast<double>(train_->examples_seen()) / per_epoch;
      snap.total_epochs = static_cast<int>(std::ceil(config_.epochs));
      snap.step = steps_;
      snap.global_step = global_step_;
      double loss = 0;
      int correct = 0;
      for (const Sample& s : window) {
        loss += s.loss;
        correct += s.correct;
      }
      snap.loss = loss / window.size();
      snap.accuracy = static_cast<double>(correct) / (window.size() * config_.batch_size);
      const double span_s = absl::ToDoubleSeconds(now - window.front().time);
      if (window.size() >= 2 && span_s > 0) {
        snap.images_per_sec = (window.back().examples - window.front().examples) / span_s;
        if (endless) snap.eta_seconds = (total_examples - done) / snap.images_per_sec;
      }
      snap.learning_rate = last_learning_rate_;
      snap.elapsed_seconds = absl::ToDoubleSeconds(now - start);
      if (config_.worker_id != 0 || global_step_ != steps_) {
        snap.staleness = last_staleness_;
        snap.push_latency_ms = last_push_ms_;
      }
      reporter_->Update(snap);
      summary.final_loss = snap.loss;
    }
    if (train_->epoch() != last_epoch) {
      last_epoch = train_->epoch();
      if (epoch_callback_) RETURN_IF_ERROR(epoch_callback_(static_cast<int>(last_epoch)));
    }
    const double epochs_done = static_cast<double>(done) / per_epoch;
    if (evaluator_ != nullptr && epochs_done >= next_eval_epoch &&
        (!endless || done < total_examples)) {
      next_eval_epoch += config_.eval_every_epochs;
      ASSIGN_OR_RETURN(EvaluationResult eval, Evaluate());
      if (reporter_ != nullptr) {
        // The weight average's figures go after the line report/run_log.h parses as is.
        reporter_->Line(absl::StrCat(
            absl::StrFormat("epoch %.2f  global step %d  test accuracy %.2f%%  test loss %.4f  "
                            "(%s elapsed)",
                            epochs_done, eval.global_step, 100 * eval.accuracy(), eval.loss,
                            FormatDuration(absl::ToDoubleSeconds(absl::Now() - start))),
            eval.average.examples > 0
                ? absl::StrFormat("  weight average: test accuracy %.2f%%  test loss %.4f",
                                  100 * eval.average.accuracy(), eval.average.loss)
                : ""));
      }
    }
  }
  const absl::Status flushed = Flush();
  if (!flushed.ok() && !(stop_ != nullptr && stop_->load())) return flushed;
  summary.steps = steps_;
  summary.examples = train_->examples_seen() - start_seen;
  summary.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  summary.images_per_sec = summary.seconds > 0 ? summary.examples / summary.seconds : 0;
  if (reporter_ != nullptr) reporter_->Finish();
  if (evaluator_ != nullptr && !summary.stopped) {
    ASSIGN_OR_RETURN(summary.final_evaluation, Evaluate());
  }
  return summary;
}

}  // namespace mobilenet
