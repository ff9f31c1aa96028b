#include "worker/cluster_training.h"

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parameter_server/ps_runner.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

// Two parameter servers in this process on loopback, and workers trained against them on
// synthetic data (no test set), so the whole join / train / rejoin / finish protocol runs
// without data files or child processes.
class ClusterTrainingTest : public ::testing::Test {
 protected:
  static MobileNetConfig Model() {
    MobileNetConfig model;
    model.alpha = 0.25f;
    model.resolution = 32;
    model.input_channels = 1;
    model.num_classes = 10;
    return model;
  }

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
    ClusterTrainingOptions o;
    o.cluster.ps_hosts = {{"127.0.0.1", servers_[0]->port()}, {"127.0.0.1", servers_[1]->port()}};
    o.cluster.worker_hosts = {{"127.0.0.1", 1}, {"127.0.0.1", 2}};
    o.cluster.job = JobName::kWorker;
    o.cluster.task_index = task;
    o.model = Model();
    o.synthetic = true;
    o.threads = 1;
    o.quiet = true;
    o.trainer.batch_size = 16;
    o.trainer.epochs = epochs;  // of a 5000-example synthetic shard
    o.client.patience = absl::Seconds(20);
    o.wait_for_workers = absl::Seconds(20);
    return o;
  }

  ps::v1::StatusResponse Status(int task) { return servers_[task]->service().Status(); }

  FILE* log_ = nullptr;
  std::vector<std::unique_ptr<ParameterServerRunner>> servers_;
};

TEST_F(ClusterTrainingTest, WorkersTrainRejoinWithoutRepeatingAndTheChiefEndsTraining) {
  // Worker 1: 0.02 epochs of 5000 examples = 100 examples, 7 steps of 16.
  auto first = RunClusterTraining(Worker(1, 0.02));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->chief);
  EXPECT_EQ(first->summary.steps, 7);
  EXPECT_EQ(first->examples_before, 0);
  for (int task = 0; task < 2; ++task) {
    EXPECT_EQ(Status(task).global_step(), 7);
    ASSERT_EQ(Status(task).workers_size(), 1);
    EXPECT_TRUE(Status(task).workers(0).finished());
    EXPECT_EQ(Status(task).workers(0).steps(), 7);
  }
  EXPECT_FALSE(servers_[0]->service().finishing());

  // Run again with a share of 200 examples: it counts its 7 earlier pushes (112 examples)
  // and trains the remaining 88 (6 steps), which are applied, not taken for retries.
  auto again = RunClusterTraining(Worker(1, 0.04));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->examples_before, 112);
  EXPECT_EQ(again->summary.steps, 6);
  for (int task = 0; task < 2; ++task) {
    EXPECT_EQ(Status(task).global_step(), 13);
    EXPECT_EQ(Status(task).pushes_duplicate(), 0);
    EXPECT_EQ(Status(task).workers(0).steps(), 13);  // cumulative over both runs
  }

  // The chief trains its share, finds nobody left to wait for, and ends the training.
  auto chief = RunClusterTraining(Worker(0, 0.02));
  ASSERT_TRUE(chief.ok()) << chief.status();
  EXPECT_TRUE(chief->chief);
  EXPECT_EQ(chief->summary.steps, 7);
  for (int task = 0; task < 2; ++task) {
    EXPECT_TRUE(servers_[task]->service().finishing());
    EXPECT_EQ(Status(task).global_step(), 20);
    EXPECT_TRUE(servers_[task]->WaitAndShutdown().ok());
  }
}

TEST_F(ClusterTrainingTest, AWorkerOfAnotherModelIsRefusedNamingBoth) {
  ClusterTrainingOptions o = Worker(1, 0.01);
  o.model.alpha = 0.5f;
  auto result = RunClusterTraining(o);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("alpha=0.25"));
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("alpha=0.5"));
  EXPECT_EQ(Status(0).global_step(), 0);
}

TEST_F(ClusterTrainingTest, OnlyWorkersRun) {
  ClusterTrainingOptions o = Worker(0, 0.01);
  o.cluster.job = JobName::kParameterServer;
  EXPECT_EQ(RunClusterTraining(o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mobilenet
