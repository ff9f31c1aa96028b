#include "worker/cluster_training.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parameter_server/ps_runner.h"
#include "worker/grpc_parameter_client.h"
#include "worker/batch_source.h"
#include "worker/in_process_parameter_client.h"
#include "worker/training_data.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

MobileNetConfig Model() {
  MobileNetConfig model;
  model.alpha = 0.25f;
  model.resolution = 32;
  model.input_channels = 1;
  model.num_classes = 10;
  return model;
}

// Worker `task` of a cluster of 2 servers and 2 workers (server addresses left to the
// caller), training `epochs` of a 5000-example synthetic shard in steps of 16.
ClusterTrainingOptions WorkerOptions(int task, double epochs) {
  ClusterTrainingOptions o;
  o.cluster.worker_hosts = {{"127.0.0.1", 1}, {"127.0.0.1", 2}};
  o.cluster.job = JobName::kWorker;
  o.cluster.task_index = task;
  o.model = Model();
  o.synthetic = true;
  o.threads = 1;
  o.quiet = true;
  o.trainer.batch_size = 16;
  o.trainer.epochs = epochs;
  o.wait_for_workers = absl::Seconds(30);
  return o;
}

// Two parameter servers in this process on loopback, and workers trained against them
// over gRPC on synthetic data (no test set), so the whole join / train / rejoin / finish
// protocol runs without data files or child processes.
class ClusterTrainingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = tmpfile();
    for (int task = 0; task < 2; ++task) {
      ParameterServerRunnerOptions o;
      o.task_index = task;
      o.num_ps = 2;
      o.num_workers = 2;
      o.bind_address = "127.0.0.1:0";
      o.model = Model();
      o.shard.learning_rate.initial_learning_rate = 0.01f;
      o.shard.learning_rate.examples_per_epoch = 10000;
      o.log_every = absl::ZeroDuration();
      o.log = log_;
      auto runner = ParameterServerRunner::Start(o);
      ASSERT_TRUE(runner.ok()) << runner.status();
      servers_.push_back(std::move(*runner));
    }
  }

  void TearDown() override {
    servers_.clear();
    fclose(log_);
  }

  ClusterTrainingOptions Worker(int task, double epochs) {
    ClusterTrainingOptions o = WorkerOptions(task, epochs);
    o.cluster.ps_hosts = {{"127.0.0.1", servers_[0]->port()}, {"127.0.0.1", servers_[1]->port()}};
    return o;
  }

  // Connects over gRPC to the two servers, as mobilenet-worker does.
  ConnectToServers OverGrpc(int worker_id) {
    const std::vector<std::string> targets = {absl::StrCat("127.0.0.1:", servers_[0]->port()),
                                              absl::StrCat("127.0.0.1:", servers_[1]->port())};
    return [targets, worker_id](const ShardingPlan& plan)
               -> absl::StatusOr<std::unique_ptr<ParameterClient>> {
      GrpcParameterClientOptions options;
      options.patience = absl::Seconds(20);
      options.worker_id = worker_id;
      auto client = GrpcParameterClient::Create(plan, targets, options);
      if (!client.ok()) return client.status();
      return std::unique_ptr<ParameterClient>(std::move(*client));
    };
  }

  ps::v1::StatusResponse Status(int task) { return servers_[task]->core().GetStatus(); }

  FILE* log_ = nullptr;
  std::vector<std::unique_ptr<ParameterServerRunner>> servers_;
};

TEST_F(ClusterTrainingTest, WorkersTrainRejoinWithoutRepeatingAndTheChiefEndsTraining) {
  // Worker 1: 0.02 epochs of 5000 examples = 100 examples, 7 steps of 16.
  auto first = RunClusterTraining(Worker(1, 0.02), OverGrpc(1));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->chief);
  EXPECT_EQ(first->summary.steps, 7);
  EXPECT_EQ(first->examples_before, 0);
  for (int task = 0; task < 2; ++task) {
    EXPECT_EQ(Status(task).global_step(), 7);
    ASSERT_EQ(Status(task).workers_size(), 2);
    EXPECT_TRUE(Status(task).workers(1).finished());
    EXPECT_EQ(Status(task).workers(1).steps(), 7);
    EXPECT_EQ(Status(task).workers(1).examples(), 112);
  }
  EXPECT_FALSE(servers_[0]->core().finishing());

  // Run again with a share of 200 examples: it counts its 7 earlier pushes (112 examples)
  // and trains the remaining 88 (6 steps), which are applied, not taken for retries.
  auto again = RunClusterTraining(Worker(1, 0.04), OverGrpc(1));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->examples_before, 112);
  EXPECT_EQ(again->summary.steps, 6);
  for (int task = 0; task < 2; ++task) {
    EXPECT_EQ(Status(task).global_step(), 13);
    EXPECT_EQ(Status(task).pushes_duplicate(), 0);
    EXPECT_EQ(Status(task).workers(1).steps(), 13);  // cumulative over both runs
  }

  // The chief trains its share, finds nobody left to wait for, and ends the training.
  auto chief = RunClusterTraining(Worker(0, 0.02), OverGrpc(0));
  ASSERT_TRUE(chief.ok()) << chief.status();
  EXPECT_TRUE(chief->chief);
  EXPECT_EQ(chief->summary.steps, 7);
  for (int task = 0; task < 2; ++task) {
    EXPECT_TRUE(servers_[task]->core().finishing());
    EXPECT_EQ(Status(task).global_step(), 20);
    EXPECT_TRUE(servers_[task]->WaitAndShutdown().ok());
  }
}

TEST_F(ClusterTrainingTest, AWorkerOfAnotherModelIsRefusedNamingBoth) {
  ClusterTrainingOptions o = Worker(1, 0.01);
  o.model.alpha = 0.5f;
  auto result = RunClusterTraining(o, OverGrpc(1));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("alpha=0.25"));
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("alpha=0.5"));
  EXPECT_EQ(Status(0).global_step(), 0);
}

TEST_F(ClusterTrainingTest, OnlyWorkersRun) {
  ClusterTrainingOptions o = Worker(0, 0.01);
  o.cluster.job = JobName::kParameterServer;
  EXPECT_EQ(RunClusterTraining(o, OverGrpc(0)).status().code(), absl::StatusCode::kInvalidArgument);
}

// The whole protocol inside one process: two parameter-server cores, two workers on
// threads, each with its in-process client, and the chief's end of the training.
class InProcessClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    plan_ = std::make_unique<ShardingPlan>(*ShardingPlan::Create(Model(), 2));
    MakeCores();
  }

  void MakeCores() {
    cores_.clear();
    ParameterShardConfig config;
    config.learning_rate.initial_learning_rate = 0.01f;
    config.learning_rate.examples_per_epoch = 10000;
    for (int i = 0; i < 2; ++i) {
      CoreOptions options;
      options.shard_index = i;
      options.num_workers = 2;
      cores_.push_back(*ParameterServerCore::Create(*plan_, config, options));
    }
  }

  ClusterTrainingOptions Worker(int task, double epochs) {
    ClusterTrainingOptions o = WorkerOptions(task, epochs);
    o.cluster.ps_hosts = {{"ps0", 1}, {"ps1", 2}};  // not dialed: the cores are in process
    return o;
  }

  ConnectToServers InProcess(int worker_id) {
    return [this, worker_id](const ShardingPlan& plan)
               -> absl::StatusOr<std::unique_ptr<ParameterClient>> {
      auto client =
          InProcessParameterClient::Create(plan, {cores_[0].get(), cores_[1].get()}, worker_id);
      if (!client.ok()) return client.status();
      return std::unique_ptr<ParameterClient>(std::move(*client));
    };
  }

  std::unique_ptr<ShardingPlan> plan_;
  std::vector<std::unique_ptr<ParameterServerCore>> cores_;
};

TEST_F(InProcessClusterTest, TwoWorkersTrainAndTheChiefEndsTheTraining) {
  absl::StatusOr<ClusterTrainingResult> other;
  std::thread worker([&] { other = RunClusterTraining(Worker(1, 0.03), InProcess(1)); });
  absl::StatusOr<ClusterTrainingResult> chief = RunClusterTraining(Worker(0, 0.02), InProcess(0));
  worker.join();
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE(chief.ok()) << chief.status();
  EXPECT_TRUE(chief->chief);
  EXPECT_EQ(other->summary.steps, 10);  // 150 examples in steps of 16
  EXPECT_EQ(chief->summary.steps, 7);   // 100
  for (const auto& core : cores_) {
    EXPECT_TRUE(core->finishing());
    const ps::v1::StatusResponse status = core->GetStatus();
    EXPECT_TRUE(status.training_complete());
    EXPECT_EQ(status.global_step(), 17);
    EXPECT_EQ(status.workers(0).examples(), 112);
    EXPECT_EQ(status.workers(1).examples(), 160);
    EXPECT_TRUE(status.workers(1).finished());
  }
}

TEST_F(InProcessClusterTest, ARestartedClusterResumesEveryWorkerFromTheCheckpointedLedger) {
  ASSERT_TRUE(RunClusterTraining(Worker(1, 0.02), InProcess(1)).ok());  // 7 steps, 112 examples
  std::vector<CoreState> checkpoints;
  for (const auto& core : cores_) checkpoints.push_back(core->ExportState());
  // The whole cluster restarts from its checkpoints: new cores, new workers.
  MakeCores();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(cores_[i]->RestoreState(checkpoints[i]).ok());
  absl::StatusOr<ClusterTrainingResult> resumed = RunClusterTraining(Worker(1, 0.04), InProcess(1));
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->examples_before, 112);  // a fact, not a guess
  EXPECT_EQ(resumed->summary.steps, 6);      // the 88 examples left of 200
  // The chief did nothing before: its whole share is left.
  absl::StatusOr<ClusterTrainingResult> chief = RunClusterTraining(Worker(0, 0.01), InProcess(0));
  ASSERT_TRUE(chief.ok()) << chief.status();
  EXPECT_EQ(chief->examples_before, 0);
  EXPECT_EQ(chief->summary.steps, 4);
}

TEST_F(InProcessClusterTest, AStoppedWorkerEndsWithoutFinishingAndResumesLater) {
  std::atomic<bool> stop{false};
  ClusterTrainingOptions o = Worker(1, 1.0);  // 5000 examples: far more than it will do
  o.stop = &stop;
  std::thread stopper([&] {
    while (cores_[0]->GetStatus().global_step() < 5) absl::SleepFor(absl::Milliseconds(5));
    stop = true;
  });
  absl::StatusOr<ClusterTrainingResult> stopped = RunClusterTraining(o, InProcess(1));
  stopper.join();
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_TRUE(stopped->stopped);
  const ps::v1::StatusResponse status = cores_[0]->GetStatus();
  EXPECT_FALSE(status.workers(1).finished());  // a restart is to resume it
  EXPECT_FALSE(cores_[0]->finishing());
  const int64_t done = status.workers(1).examples();
  EXPECT_EQ(done, 16 * status.workers(1).pushes());
  EXPECT_GE(done, 5 * 16);
  // Restarted with a share it has almost done, it trains only the rest.
  absl::StatusOr<ClusterTrainingResult> resumed =
      RunClusterTraining(Worker(1, (done + 32) / 5000.0), InProcess(1));
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->examples_before, done);
  EXPECT_EQ(resumed->summary.steps, 2);
}

// Elastic workers in one process: three member slots for a --worker_hosts of two, the
// training data leased in blocks by server 0.
class ElasticInProcessClusterTest : public InProcessClusterTest {
 protected:
  void SetUp() override {
    plan_ = std::make_unique<ShardingPlan>(*ShardingPlan::Create(Model(), 2));
    ParameterShardConfig config;
    config.learning_rate.initial_learning_rate = 0.01f;
    config.learning_rate.examples_per_epoch = 200;
    for (int i = 0; i < 2; ++i) {
      CoreOptions options;
      options.shard_index = i;
      options.num_workers = 3;
      options.max_workers = 3;
      options.sync.worker_liveness = absl::Milliseconds(300);
      cores_.push_back(*ParameterServerCore::Create(*plan_, config, options));
    }
    // 200 examples of the model's shape: 10 blocks of 20 an epoch.
    const ImageShape shape{32, 32, 1};
    std::vector<uint8_t> pixels(200 * shape.elements());
    std::vector<int> labels(200);
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 13);
    for (int i = 0; i < 200; ++i) labels[i] = i % 10;
    auto dataset = std::make_shared<const Dataset>(
        *Dataset::Create(shape, 10, std::move(pixels), std::move(labels)));
    data_ = std::make_shared<TrainingData>();
    for (int c = 0; c < 10; ++c) data_->class_names.push_back(absl::StrCat("class", c));
    data_->output_shape = shape;
    data_->train_examples = 200;
    data_->make_block_source =
        [dataset](const DataShard& shard) -> absl::StatusOr<std::unique_ptr<BatchSource>> {
      auto source = ShardBatchSource::Create(dataset, shard, PreprocessingConfig());
      if (!source.ok()) return source.status();
      return std::unique_ptr<BatchSource>(std::move(*source));
    };
  }

  ClusterTrainingOptions Elastic(int task) {
    ClusterTrainingOptions o = Worker(task, 2);  // 2 epochs of the data set, 20 blocks
    o.synthetic = false;
    o.data = data_;
    o.max_workers = 3;
    o.data_block_examples = 20;
    o.worker_liveness = absl::Milliseconds(300);
    return o;
  }

  std::shared_ptr<TrainingData> data_;
};

TEST_F(ElasticInProcessClusterTest, AJoinerBeyondTheHostsTrainsBlocksAndALeaversBlockIsRetrained) {
  // Worker 2 (not in --worker_hosts) joins first, and leaves for good (stopped) after 3
  // blocks, holding a fourth.
  std::atomic<bool> stop{false};
  ClusterTrainingOptions joiner = Elastic(2);
  joiner.stop = &stop;
  std::thread stopper([&] {
    while (cores_[0]->GetStatus().data_leases().blocks_completed() < 3) {
      absl::SleepFor(absl::Milliseconds(2));
    }
    stop = true;
  });
  absl::StatusOr<ClusterTrainingResult> left = RunClusterTraining(joiner, InProcess(2));
  stopper.join();
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_TRUE(left->stopped);
  EXPECT_GE(cores_[0]->GetStatus().workers(2).examples(), 3 * 20);

  // Workers 0 and 1 train the rest; the leaver's block comes back once it is silent.
  absl::StatusOr<ClusterTrainingResult> other;
  std::thread worker([&] { other = RunClusterTraining(Elastic(1), InProcess(1)); });
  absl::StatusOr<ClusterTrainingResult> chief = RunClusterTraining(Elastic(0), InProcess(0));
  worker.join();
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE(chief.ok()) << chief.status();
  const ps::v1::StatusResponse status = cores_[0]->GetStatus();
  EXPECT_TRUE(status.training_complete());
  EXPECT_EQ(status.max_workers(), 3);
  EXPECT_EQ(status.data_leases().blocks_total(), 20);
  EXPECT_EQ(status.data_leases().blocks_completed(), 20);
  EXPECT_EQ(status.data_leases().held_size(), 0);
  EXPECT_GE(status.data_leases().blocks_reassigned(), 1);
  // Every example of both epochs was trained (the leaver's half-trained block again),
  // plus at most a topped-up last batch per worker and the leaver's partial block.
  int64_t examples = 0;
  for (const ps::v1::WorkerStatus& w : status.workers()) examples += w.examples();
  EXPECT_GE(examples, 400);
  EXPECT_LE(examples, 400 + 20 + 3 * 15);
  bool joined = false, departed = false;
  for (const ps::v1::MembershipEvent& e : status.membership_events()) {
    joined |= e.worker_id() == 2 && e.kind() == ps::v1::MembershipEvent::JOINED;
    departed |= e.worker_id() == 2 && e.kind() == ps::v1::MembershipEvent::LEFT;
  }
  EXPECT_TRUE(joined);
  EXPECT_TRUE(departed);
}

TEST_F(ElasticInProcessClusterTest, FractionalEpochsAndEmptyBlocksAreRefusedNamingTheFlag) {
  ClusterTrainingOptions o = Elastic(1);
  o.trainer.epochs = 1.5;
  absl::StatusOr<ClusterTrainingResult> result = RunClusterTraining(o, InProcess(1));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("--epochs=1.5"));
  o = Elastic(1);
  o.data_block_examples = 0;
  result = RunClusterTraining(o, InProcess(1));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("--data_block_examples=0"));
  EXPECT_FALSE(cores_[0]->GetStatus().data_leases().has_data());  // nothing leased
}

}  // namespace
}  // namespace mobilenet
