#include "worker/trainer.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "model/layers/compute_threads.h"
#include "parameter_server/core/parameter_server_core.h"
#include "parameter_server/core/sharding_plan.h"
#include "worker/in_process_parameter_client.h"
#include "worker/synthetic_source.h"

namespace mobilenet {
namespace {

// A tiny model on a synthetic data set small enough to memorize.
class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetComputeThreads(1);
    config_.alpha = 0.25f;
    config_.resolution = 16;
    config_.input_channels = 1;
    config_.num_classes = 4;
    model_ = *MobileNetV1::Create(config_);
    SyntheticConfig data;
    data.shape = {16, 16, 1};
    data.num_classes = 4;
    data.examples_per_epoch = 32;
    data.seed = 3;
    source_ = *SyntheticBatchSource::Create(data);
    ParameterShardConfig store;
    store.seed = 1;
    store.optimizer.kind = OptimizerKind::kMomentum;
    store.learning_rate.initial_learning_rate = 0.1f;
    store.learning_rate.decay_factor = 1.0f;
    store.learning_rate.examples_per_epoch = 32;
    plan_ = std::make_unique<ShardingPlan>(*ShardingPlan::Create(config_, 1));
    core_ = *ParameterServerCore::Create(*plan_, store, CoreOptions());
    client_ = *InProcessParameterClient::Create(*plan_, {core_.get()}, 0);
    trainer_config_.batch_size = 8;
    trainer_config_.label_smoothing = 0;
  }

  MobileNetConfig config_;
  std::unique_ptr<MobileNetV1> model_;
  std::unique_ptr<SyntheticBatchSource> source_;
  std::unique_ptr<ShardingPlan> plan_;
  std::unique_ptr<ParameterServerCore> core_;
  std::unique_ptr<InProcessParameterClient> client_;
  TrainerConfig trainer_config_;
};

TEST_F(TrainerTest, StepsPushToTheStoreAndTheLossFalls) {
  Trainer trainer(trainer_config_, model_.get(), client_.get(), source_.get(), nullptr, nullptr);
  double first = 0, last = 0;
  for (int i = 0; i < 200; ++i) {
    auto result = trainer.Step();
    ASSERT_TRUE(result.ok()) << result.status();
    if (i < 4) first += result->loss / 4;
    if (i >= 196) last += result->loss / 4;
  }
  EXPECT_EQ(core_->shard().version(), 200);
  EXPECT_EQ(core_->shard().examples_seen(), 200 * 8);
  EXPECT_LT(last, 0.7 * first) << "first " << first << " last " << last;
}

TEST_F(TrainerTest, RunTrainsTheRequestedEpochsAndCallsBackEachEpoch) {
  trainer_config_.epochs = 3;
  Trainer trainer(trainer_config_, model_.get(), client_.get(), source_.get(), nullptr, nullptr);
  std::vector<int> epochs;
  trainer.set_epoch_callback([&](int epoch) {
    epochs.push_back(epoch);
    return absl::OkStatus();
  });
  auto summary = trainer.Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->examples, 3 * 32);
  EXPECT_EQ(summary->steps, 12);
  EXPECT_EQ(epochs, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(summary->final_evaluation.examples, 0);  // no test set given
}

// A source that ends (as leased data does) after `batches` batches of `inner`.
class EndingSource : public ForwardingBatchSource {
 public:
  EndingSource(BatchSource* inner, int batches) : ForwardingBatchSource(inner), left_(batches) {}
  absl::Status NextBatch(int batch_size, float* images, int* labels) override {
    if (left_ == 0) return absl::OutOfRangeError("the run's data is trained");
    --left_;
    return inner()->NextBatch(batch_size, images, labels);
  }
  bool endless() const override { return false; }

 private:
  int left_;
};

TEST_F(TrainerTest, RunOfAnEndingSourceTrainsUntilItEndsWhateverTheEpochsSay) {
  trainer_config_.epochs = 1;  // 4 batches of the nominal epoch; the source has 10
  for (bool overlap : {false, true}) {
    ParameterShardConfig store;
    store.learning_rate.examples_per_epoch = 32;
    auto core = *ParameterServerCore::Create(*plan_, store, CoreOptions());
    auto client = *InProcessParameterClient::Create(*plan_, {core.get()}, 0);
    trainer_config_.overlap_communication = overlap;
    EndingSource ending(source_.get(), 10);
    Trainer trainer(trainer_config_, model_.get(), client.get(), &ending, nullptr, nullptr);
    auto summary = trainer.Run();
    ASSERT_TRUE(summary.ok()) << summary.status();
    EXPECT_EQ(summary->steps, 10) << "overlap " << overlap;
    EXPECT_EQ(summary->examples, 80);
    EXPECT_FALSE(summary->stopped);
    EXPECT_EQ(core->shard().version(), 10) << "every step's push landed";
  }
}

TEST_F(TrainerTest, AnEpochCallbackErrorStopsTraining) {
  trainer_config_.epochs = 3;
  Trainer trainer(trainer_config_, model_.get(), client_.get(), source_.get(), nullptr, nullptr);
  trainer.set_epoch_callback([](int) { return absl::DataLossError("disk full"); });
  auto summary = trainer.Run();
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(core_->shard().version(), 4);  // stopped after the first epoch
}

TEST_F(TrainerTest, EvaluateCountsEveryTestExampleWithTheMovingStatistics) {
  std::vector<uint8_t> pixels(20 * 16 * 16);
  std::vector<int> labels(20);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7);
  for (int i = 0; i < 20; ++i) labels[i] = i % 4;
  auto test_set = std::make_shared<const Dataset>(
      *Dataset::Create({16, 16, 1}, 4, std::move(pixels), std::move(labels)));
  PreprocessingConfig pre;
  auto reader = *EvaluationReader::Create(test_set, pre);
  trainer_config_.eval_batch_size = 6;  // 20 = 6 + 6 + 6 + 2: a short last batch
  Trainer trainer(trainer_config_, model_.get(), client_.get(), source_.get(), &reader, nullptr);
  auto eval = trainer.Evaluate();
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_EQ(eval->examples, 20);
  EXPECT_GE(eval->correct, 0);
  EXPECT_LE(eval->correct, 20);
  EXPECT_GT(eval->loss, 0);
  EXPECT_EQ(eval->global_step, 0);
}

TEST_F(TrainerTest, EveryPushFindsItsBackupUnderDelayCompensation) {
  // The in-process store of single-process training, with --staleness_policy=dc: worker 0's
  // training pulls are its backups. Overlapped, each gradient comes from the worker's
  // second-latest pull; the evaluations' pulls in between are not training pulls and evict
  // nothing.
  std::vector<uint8_t> pixels(8 * 16 * 16, 100);
  std::vector<int> labels(8, 1);
  auto test_set = std::make_shared<const Dataset>(
      *Dataset::Create({16, 16, 1}, 4, std::move(pixels), std::move(labels)));
  auto reader = *EvaluationReader::Create(test_set, PreprocessingConfig());
  for (bool overlap : {false, true}) {
    ParameterShardConfig store;
    store.seed = 1;
    store.optimizer.kind = OptimizerKind::kRmsProp;
    store.learning_rate.examples_per_epoch = 32;
    store.staleness_policy = StalenessPolicy::kDelayCompensation;
    std::unique_ptr<ParameterServerCore> core = *ParameterServerCore::Create(*plan_, store, {});
    std::unique_ptr<InProcessParameterClient> client =
        *InProcessParameterClient::Create(*plan_, {core.get()}, 0);
    trainer_config_.overlap_communication = overlap;
    Trainer trainer(trainer_config_, model_.get(), client.get(), source_.get(), &reader, nullptr);
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(trainer.Step().ok());
      if (i % 3 == 0) {
        ASSERT_TRUE(trainer.Evaluate().ok());
      }
    }
    ASSERT_TRUE(trainer.Flush().ok());
    const ps::v1::StatusResponse status = core->GetStatus();
    EXPECT_EQ(status.pushes_applied(), 10) << "overlap " << overlap;
    EXPECT_EQ(status.pushes_compensated(), 10) << "overlap " << overlap;
    EXPECT_EQ(status.pushes_uncompensated(), 0) << "overlap " << overlap;
    EXPECT_EQ(status.staleness_max(), overlap ? 1 : 0);
  }
}

TEST_F(TrainerTest, EvaluatesTheWeightAverageToo) {
  ParameterShardConfig store;
  store.seed = 1;
  store.optimizer.kind = OptimizerKind::kMomentum;
  store.learning_rate.initial_learning_rate = 0.1f;
  store.learning_rate.decay_factor = 1.0f;
  store.learning_rate.examples_per_epoch = 32;
  store.weight_ema_decay = 0.5f;
  std::unique_ptr<ParameterServerCore> core = *ParameterServerCore::Create(*plan_, store, {});
  std::unique_ptr<InProcessParameterClient> client =
      *InProcessParameterClient::Create(*plan_, {core.get()}, 0);
  std::vector<uint8_t> pixels(20 * 16 * 16);
  std::vector<int> labels(20);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7);
  for (int i = 0; i < 20; ++i) labels[i] = i % 4;
  auto test_set = std::make_shared<const Dataset>(
      *Dataset::Create({16, 16, 1}, 4, std::move(pixels), std::move(labels)));
  auto reader = *EvaluationReader::Create(test_set, PreprocessingConfig());

  // Off by default: no average figures.
  Trainer plain(trainer_config_, model_.get(), client.get(), source_.get(), &reader, nullptr);
  auto eval = plain.Evaluate();
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_EQ(eval->average.examples, 0);

  trainer_config_.evaluate_weight_average = true;
  Trainer trainer(trainer_config_, model_.get(), client.get(), source_.get(), &reader, nullptr);
  // Before any push the average is the initial weights: the same figures.
  eval = trainer.Evaluate();
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_EQ(eval->average.examples, 20);
  EXPECT_EQ(eval->average.correct, eval->correct);
  EXPECT_DOUBLE_EQ(eval->average.loss, eval->loss);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(trainer.Step().ok());
  eval = trainer.Evaluate();
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_EQ(eval->global_step, 5);
  EXPECT_EQ(eval->average.examples, 20);
  EXPECT_GT(eval->average.loss, 0);
  EXPECT_NE(eval->average.loss, eval->loss);

  // Servers keeping no average: the evaluation fails, naming the flag.
  Trainer mismatched(trainer_config_, model_.get(), client_.get(), source_.get(), &reader, nullptr);
  const absl::Status refused = mismatched.Evaluate().status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("--weight_ema_decay"), std::string::npos);
}

// Passes every call on to another client; tests override what they change.
class ForwardingClient : public ParameterClient {
 public:
  explicit ForwardingClient(ParameterClient* inner) : inner_(inner) {}
  using ParameterClient::Pull;
  absl::StatusOr<ModelVersion> Pull(absl::Span<float> p, absl::Span<float> s, WeightsKind weights,
                                    PullPurpose purpose, int64_t min_sync_step) override {
    return inner_->Pull(p, s, weights, purpose, min_sync_step);
  }
  absl::StatusOr<PushResult> Push(const PushRequest& request) override {
    return inner_->Push(request);
  }
  std::vector<absl::StatusOr<ps::v1::StatusResponse>> GetStatus() override {
    return inner_->GetStatus();
  }
  absl::Status ReportEvaluation(int32_t worker_id, const EvaluationResult& result) override {
    return inner_->ReportEvaluation(worker_id, result);
  }
  absl::Status Finish(int32_t worker_id, bool complete) override {
    return inner_->Finish(worker_id, complete);
  }
  void set_progress(double images_per_sec, int64_t steps) override {
    inner_->set_progress(images_per_sec, steps);
  }

 protected:
  ParameterClient* inner_;
};

// Refuses every other push as too stale, as a parameter server with
// --staleness_policy=reject does.
class RejectingClient : public ForwardingClient {
 public:
  using ForwardingClient::ForwardingClient;
  absl::StatusOr<PushResult> Push(const PushRequest& request) override {
    if (++pushes_ % 2 == 0) return absl::AbortedError("too stale; pull again");
    return inner_->Push(request);
  }

 private:
  int pushes_ = 0;
};

TEST_F(TrainerTest, APushRefusedAsTooStaleIsDroppedAndTrainingGoesOn) {
  RejectingClient rejecting(client_.get());
  Trainer trainer(trainer_config_, model_.get(), &rejecting, source_.get(), nullptr, nullptr);
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(trainer.Step().ok());
  EXPECT_EQ(trainer.rejected_pushes(), 3);
  EXPECT_EQ(core_->shard().version(), 3);
}

TEST_F(TrainerTest, ARestartedWorkerWithTheSameIdIsNotTakenForRetries) {
  Trainer first(trainer_config_, model_.get(), client_.get(), source_.get(), nullptr, nullptr);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(first.Step().ok());
  Trainer restarted(trainer_config_, model_.get(), client_.get(), source_.get(), nullptr,
                    nullptr);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(restarted.Step().ok());
  EXPECT_EQ(core_->GetStatus().pushes_duplicate(), 0);
  EXPECT_EQ(core_->shard().version(), 6);
}

TEST_F(TrainerTest, OverlappedStepsPushEveryGradientOneStepStaler) {
  trainer_config_.overlap_communication = true;
  Trainer trainer(trainer_config_, model_.get(), client_.get(), source_.get(), nullptr, nullptr);
  // Averages over the first and the last 40 steps: a stale step's loss jumps about, and
  // how much depends on the BLAS kernels' rounding (OPENBLAS_CORETYPE).
  double first = 0, last = 0;
  for (int i = 0; i < 400; ++i) {
    auto result = trainer.Step();
    ASSERT_TRUE(result.ok()) << result.status();
    if (i < 40) first += result->loss / 40;
    if (i >= 360) last += result->loss / 40;
  }
  ASSERT_TRUE(trainer.Flush().ok());
  const ps::v1::StatusResponse status = core_->GetStatus();
  EXPECT_EQ(status.global_step(), 400);
  EXPECT_EQ(status.examples_seen(), 400 * 8);
  // Alone, each gradient was computed from weights that lacked only the previous push
  // (the first two both from version 0).
  EXPECT_EQ(status.staleness_max(), 1);
  EXPECT_EQ(status.staleness_p50(), 1);
  EXPECT_LT(last, 0.7 * first) << "first " << first << " last " << last;
}

// Holds every push until released.
class BlockingPushClient : public ForwardingClient {
 public:
  using ForwardingClient::ForwardingClient;
  absl::StatusOr<PushResult> Push(const PushRequest& request) override {
    release_.WaitForNotification();
    return inner_->Push(request);
  }
  void Release() { release_.Notify(); }

 private:
  absl::Notification release_;
};

TEST_F(TrainerTest, AnOverlappedStepReturnsBeforeItsPushEnds) {
  trainer_config_.overlap_communication = true;
  BlockingPushClient blocking(client_.get());
  Trainer trainer(trainer_config_, model_.get(), &blocking, source_.get(), nullptr, nullptr);
  ASSERT_TRUE(trainer.Step().ok());  // returns with its push held by the client
  EXPECT_EQ(core_->shard().version(), 0);
  blocking.Release();
  ASSERT_TRUE(trainer.Flush().ok());
  EXPECT_EQ(core_->shard().version(), 1);
}

TEST_F(TrainerTest, OverlappedRunPushesEveryStepBeforeReturning) {
  trainer_config_.overlap_communication = true;
  trainer_config_.epochs = 3;
  Trainer trainer(trainer_config_, model_.get(), client_.get(), source_.get(), nullptr, nullptr);
  auto summary = trainer.Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->steps, 12);
  EXPECT_EQ(core_->shard().version(), 12);
}

// Answers every push 50 ms late.
class SlowPushClient : public ForwardingClient {
 public:
  using ForwardingClient::ForwardingClient;
  absl::StatusOr<PushResult> Push(const PushRequest& request) override {
    absl::SleepFor(absl::Milliseconds(50));
    return inner_->Push(request);
  }
};

TEST_F(TrainerTest, TheStepCallbackSaysWhereEachStepsTimeWent) {
  for (const bool overlap : {false, true}) {
    SCOPED_TRACE(overlap ? "overlapped" : "in turn");
    trainer_config_.overlap_communication = overlap;
    SlowPushClient slow(client_.get());
    Trainer trainer(trainer_config_, model_.get(), &slow, source_.get(), nullptr, nullptr);
    std::vector<StepTiming> timings;
    trainer.set_step_callback([&](const StepTiming& t) { timings.push_back(t); });
    std::vector<float> losses;
    for (int i = 0; i < 3; ++i) {
      auto result = trainer.Step();
      ASSERT_TRUE(result.ok()) << result.status();
      losses.push_back(result->loss);
    }
    ASSERT_TRUE(trainer.Flush().ok());
    ASSERT_EQ(timings.size(), 3u);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(timings[i].examples, trainer_config_.batch_size);
      EXPECT_EQ(timings[i].loss, losses[i]);
      EXPECT_GT(timings[i].compute, absl::ZeroDuration());
      EXPECT_GE(timings[i].pull_wait, absl::ZeroDuration());
    }
    if (!overlap) {
      EXPECT_GE(timings[1].push_wait, absl::Milliseconds(50));
    } else {
      // The first step pushes nothing before it returns; the next ones wait for the
      // previous push (50 ms, less what their own compute overlapped).
      EXPECT_EQ(timings[0].push_wait, absl::ZeroDuration());
      EXPECT_GT(timings[1].push_wait + timings[2].push_wait, absl::ZeroDuration());
      EXPECT_LE(timings[1].push_wait, absl::Milliseconds(50) + absl::Seconds(1));
    }
  }
}

TEST_F(TrainerTest, OverlappedPushesRefusedAsTooStaleAreDropped) {
  trainer_config_.overlap_communication = true;
  RejectingClient rejecting(client_.get());
  Trainer trainer(trainer_config_, model_.get(), &rejecting, source_.get(), nullptr, nullptr);
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(trainer.Step().ok());
  ASSERT_TRUE(trainer.Flush().ok());
  EXPECT_EQ(trainer.rejected_pushes(), 3);
  EXPECT_EQ(core_->shard().version(), 3);
}

// Fails every push as a server that never comes back does.
class FailingPushClient : public ForwardingClient {
 public:
  using ForwardingClient::ForwardingClient;
  absl::StatusOr<PushResult> Push(const PushRequest&) override {
    return absl::UnavailableError("parameter server 0 (ps0:2222) Push: gone");
  }
};

TEST_F(TrainerTest, AnOverlappedPushErrorIsReturnedByTheNextStep) {
  trainer_config_.overlap_communication = true;
  FailingPushClient failing(client_.get());
  Trainer trainer(trainer_config_, model_.get(), &failing, source_.get(), nullptr, nullptr);
  ASSERT_TRUE(trainer.Step().ok());
  const absl::Status next = trainer.Step().status();
  EXPECT_EQ(next.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(next.message().find("gone"), std::string::npos) << next;
}

TEST_F(TrainerTest, AStopRequestEndsRunAfterTheStepInProgressWithEveryPushWhole) {
  // The flag is raised while the third step computes (from the batch source, which the
  // step reads first): that step still pushes its whole gradient, and Run stops there.
  trainer_config_.epochs = 10;
  trainer_config_.overlap_communication = true;
  std::atomic<bool> stop{false};
  class StoppingSource : public ForwardingBatchSource {
   public:
    StoppingSource(BatchSource* inner, std::atomic<bool>* stop)
        : ForwardingBatchSource(inner), stop_(stop) {}
    absl::Status NextBatch(int batch_size, float* images, int* labels) override {
      if (++batches_ == 3) *stop_ = true;
      return inner()->NextBatch(batch_size, images, labels);
    }

   private:
    std::atomic<bool>* stop_;
    int batches_ = 0;
  } source(source_.get(), &stop);
  Trainer trainer(trainer_config_, model_.get(), client_.get(), &source, nullptr, nullptr);
  trainer.set_stop_flag(&stop);
  auto summary = trainer.Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_TRUE(summary->stopped);
  EXPECT_EQ(summary->steps, 3);
  EXPECT_EQ(core_->shard().version(), 3);  // the in-flight push completed, nothing more
  EXPECT_EQ(core_->shard().examples_seen(), 3 * 8);
  EXPECT_EQ(summary->final_evaluation.examples, 0);
}

TEST_F(TrainerTest, EvaluateWithoutATestSetIsAnError) {
  Trainer trainer(trainer_config_, model_.get(), client_.get(), source_.get(), nullptr, nullptr);
  EXPECT_EQ(trainer.Evaluate().status().code(), absl::StatusCode::kFailedPrecondition);
}

// --sync_replicas: two workers (two trainers on two threads) over two servers, both
// gradients aggregated each step (N = 2).
TEST_F(TrainerTest, TwoSynchronousWorkersStepTogetherOnEveryServer) {
  ParameterShardConfig store;
  store.seed = 1;
  store.optimizer.kind = OptimizerKind::kSgd;
  store.learning_rate.initial_learning_rate = 0.1f;
  store.learning_rate.decay_factor = 1.0f;
  store.learning_rate.examples_per_epoch = 32;
  ShardingPlan plan = *ShardingPlan::Create(config_, 2);
  std::vector<std::unique_ptr<ParameterServerCore>> cores;
  std::vector<ParameterServerCore*> pointers;
  for (int i = 0; i < 2; ++i) {
    CoreOptions options;
    options.shard_index = i;
    options.num_workers = 2;
    options.sync.enabled = true;
    options.sync.replicas_to_aggregate = 2;
    absl::StatusOr<std::unique_ptr<ParameterServerCore>> core =
        ParameterServerCore::Create(plan, store, options);
    ASSERT_TRUE(core.ok()) << core.status();
    pointers.push_back(core->get());
    cores.push_back(std::move(*core));
  }
  constexpr int kSteps = 5;
  struct Member {
    std::unique_ptr<MobileNetV1> model;
    std::unique_ptr<SyntheticBatchSource> source;
    std::unique_ptr<InProcessParameterClient> client;
    std::unique_ptr<Trainer> trainer;
    absl::Status status;
    std::vector<int64_t> global_steps;
  };
  std::vector<Member> members(2);
  for (int32_t worker = 0; worker < 2; ++worker) {
    Member& member = members[worker];
    member.model = *MobileNetV1::Create(config_);
    SyntheticConfig data;
    data.shape = {16, 16, 1};
    data.num_classes = 4;
    data.examples_per_epoch = 32;
    data.seed = 3 + worker;
    member.source = *SyntheticBatchSource::Create(data);
    member.client = *InProcessParameterClient::Create(plan, pointers, worker);
    TrainerConfig config = trainer_config_;
    config.worker_id = worker;
    config.sync_replicas = true;
    config.overlap_communication = true;  // turned off by sync_replicas
    member.trainer = std::make_unique<Trainer>(config, member.model.get(), member.client.get(),
                                               member.source.get(), nullptr, nullptr);
  }
  std::vector<std::thread> threads;
  for (Member& member : members) {
    threads.emplace_back([&member] {
      for (int i = 0; i < kSteps; ++i) {
        absl::StatusOr<TrainStepResult> result = member.trainer->Step();
        if (!result.ok()) {
          member.status = result.status();
          return;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const Member& member : members) ASSERT_TRUE(member.status.ok()) << member.status;
  // Every gradient was counted: 5 steps of 2 pushes each on server 0.
  const ps::v1::StatusResponse leader = cores[0]->GetStatus();
  EXPECT_EQ(leader.sync_steps(), kSteps);
  EXPECT_EQ(leader.global_step(), 2 * kSteps);
  EXPECT_EQ(leader.examples_seen(), 2 * kSteps * 8);
  EXPECT_EQ(leader.sync_pushes_dropped(), 0);
  EXPECT_EQ(leader.workers(0).pushes(), kSteps);
  EXPECT_EQ(leader.workers(1).pushes(), kSteps);
  // Server 1 learns of the last decision with the next pull: one more (reading) pull by
  // a member brings it level.
  std::vector<float> params(model_->parameter_layout().total_size());
  absl::StatusOr<ModelVersion> read =
      members[0].client->Pull(absl::MakeSpan(params), {}, WeightsKind::kRaw, PullPurpose::kRead, 0);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->shard_versions, (std::vector<int64_t>{2 * kSteps, 2 * kSteps}));
  const ps::v1::StatusResponse other = cores[1]->GetStatus();
  EXPECT_EQ(other.sync_steps(), kSteps);
  EXPECT_EQ(other.global_step(), 2 * kSteps);
  EXPECT_EQ(other.examples_seen(), 2 * kSteps * 8);
}
}  // namespace
}  // namespace mobilenet
