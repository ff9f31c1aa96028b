#include "report/run_log.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

// Lines as the chief printed them (runs/20261201-181701/worker-0.log); the progress lines
// of a terminal run are separated by '\r'.
constexpr char kChiefLog[] =
    "MobileNet-V1 alpha 0.5, 56x56x1 input, batch 64, 1 thread(s), worker 0 of 2 (ps: "
    "127.0.0.1:26098,127.0.0.1:28872; workers: 127.0.0.1:22623,127.0.0.1:25726)\n"
    "epoch 0.00/12  step 1  0.0 img/s  loss 2.4696  acc 6.2%  lr 0  global 0  stale 0.0  "
    "push 0.0ms\n"
    "epoch 0.27/12  step 126  795.1 img/s  loss 2.8055  acc 19.3%  lr 0.045  global 246  "
    "stale 3.0  push 77.1ms  ETA 7m23s\r"
    "epoch 0.53/12  step 249  784.4 img/s  loss 1.8511  acc 48.6%  lr 0.045  global 492  "
    "stale 3.0  push 79.3ms  ETA 7m19s\n"
    "epoch 1.00  global step 935  test accuracy 73.22%  test loss 0.7586  (42s elapsed)\n"
    "epoch 2.00  global step 1900  test accuracy 81.54%  test loss 0.5362  (1m23s elapsed)\n"
    "Worker 0 trained 5625 steps (360000 examples) in 8m04s, 744.5 images/s\n"
    "Test accuracy: 91.21% (9121/10000), test loss 0.3126 at global step 11250\n";

TEST(ParseWorkerLogTest, ReadsEveryKindOfLine) {
  const WorkerLog log = ParseWorkerLog(0, kChiefLog);
  EXPECT_EQ(log.batch_size, 64);
  ASSERT_EQ(log.progress.size(), 3u);
  EXPECT_EQ(log.progress[1].step, 126);
  EXPECT_EQ(log.progress[1].global_step, 246);
  EXPECT_DOUBLE_EQ(log.progress[1].images_per_sec, 795.1);
  EXPECT_DOUBLE_EQ(log.progress[1].loss, 2.8055);
  EXPECT_DOUBLE_EQ(log.progress[1].accuracy_percent, 19.3);
  EXPECT_DOUBLE_EQ(log.progress[1].staleness, 3.0);
  EXPECT_DOUBLE_EQ(log.progress[2].push_latency_ms, 79.3);
  ASSERT_EQ(log.evaluations.size(), 2u);
  EXPECT_EQ(log.evaluations[1].global_step, 1900);
  EXPECT_DOUBLE_EQ(log.evaluations[1].accuracy_percent, 81.54);
  EXPECT_DOUBLE_EQ(log.evaluations[1].loss, 0.5362);
  EXPECT_DOUBLE_EQ(log.evaluations[1].elapsed_seconds, 83);
  ASSERT_TRUE(log.final_evaluation.has_value());
  EXPECT_DOUBLE_EQ(log.final_evaluation->accuracy_percent, 91.21);
  EXPECT_EQ(log.final_evaluation->correct, 9121);
  EXPECT_EQ(log.final_evaluation->total, 10000);
  EXPECT_EQ(log.final_evaluation->global_step, 11250);
  EXPECT_DOUBLE_EQ(log.trained_seconds, 8 * 60 + 4);
  EXPECT_DOUBLE_EQ(log.images_per_sec, 744.5);
}

TEST(ParseWorkerLogTest, ReadsTheWeightAverageAfterTheLinesItExtends) {
  const WorkerLog log = ParseWorkerLog(
      0,
      "epoch 1.00  global step 935  test accuracy 73.22%  test loss 0.7586  (42s elapsed)  "
      "weight average: test accuracy 75.10%  test loss 0.7012\n"
      "Test accuracy: 91.21% (9121/10000), test loss 0.3126 at global step 11250\n"
      "Weight average: test accuracy 91.60% (9160/10000), test loss 0.3001\n");
  ASSERT_EQ(log.evaluations.size(), 1u);
  EXPECT_DOUBLE_EQ(log.evaluations[0].accuracy_percent, 73.22);
  EXPECT_DOUBLE_EQ(log.evaluations[0].elapsed_seconds, 42);
  EXPECT_DOUBLE_EQ(log.evaluations[0].average_accuracy_percent, 75.10);
  EXPECT_DOUBLE_EQ(log.evaluations[0].average_loss, 0.7012);
  ASSERT_TRUE(log.final_evaluation.has_value());
  EXPECT_DOUBLE_EQ(log.final_evaluation->accuracy_percent, 91.21);
  ASSERT_TRUE(log.final_average_evaluation.has_value());
  EXPECT_DOUBLE_EQ(log.final_average_evaluation->accuracy_percent, 91.60);
  EXPECT_EQ(log.final_average_evaluation->correct, 9160);
  EXPECT_DOUBLE_EQ(log.final_average_evaluation->loss, 0.3001);
  EXPECT_EQ(log.final_average_evaluation->global_step, 11250);

  // Without the average (the default), the fields say so.
  const WorkerLog plain = ParseWorkerLog(0, kChiefLog);
  EXPECT_LT(plain.evaluations[0].average_accuracy_percent, 0);
  EXPECT_FALSE(plain.final_average_evaluation.has_value());
}

TEST(ParseWorkerLogTest, SingleProcessLineHasNoDistributedFields) {
  const WorkerLog log = ParseWorkerLog(
      0, "epoch 1.50/4  step 10  123.4 img/s  loss 0.5000  acc 75.0%  lr 0.01  ETA 1m05s");
  ASSERT_EQ(log.progress.size(), 1u);
  EXPECT_EQ(log.progress[0].global_step, 10);
  EXPECT_LT(log.progress[0].staleness, 0);
  EXPECT_LT(log.progress[0].push_latency_ms, 0);
}

TEST(ParseWorkerLogTest, ElapsedTimeOfNewerProgressLines) {
  const WorkerLog log = ParseWorkerLog(
      1,
      "epoch 0.26/12  step 122  773.0 img/s  loss 2.8507  acc 17.8%  lr 0.045  global 244  "
      "stale 2.0  push 85.9ms  ETA 7m36s  elapsed 10s\n"
      "epoch 11.79/12  step 5526  808.1 img/s  loss 0.6863  acc 91.4%  lr 0.00387  global "
      "10686  stale 3.0  push 78.9ms  ETA 8s  elapsed 7m31s\n"
      "epoch 0.00/12  step 1  0.0 img/s  loss 2.4092  acc 1.6%  lr 0  global 0  stale 0.0  "
      "push 0.0ms  elapsed 0s\n");
  ASSERT_EQ(log.progress.size(), 3u);
  EXPECT_DOUBLE_EQ(log.progress[0].elapsed_seconds, 10);
  EXPECT_DOUBLE_EQ(log.progress[1].elapsed_seconds, 451);
  EXPECT_DOUBLE_EQ(log.progress[1].push_latency_ms, 78.9);
  EXPECT_DOUBLE_EQ(log.progress[2].elapsed_seconds, 0);
  EXPECT_LT(ParseWorkerLog(0, kChiefLog).progress[1].elapsed_seconds, 0);
}

TEST(ParseWorkerLogTest, SkipsTruncatedAndGarbledLines) {
  // A run killed midway: the last line cut off, binary noise, an empty log.
  const WorkerLog log = ParseWorkerLog(
      1,
      "epoch 0.26/12  step 122  773.0 img/s  loss 2.8507  acc 17.8%  lr 0.045  global 244\n"
      "\x01\xff garbage epoch step img/s\n"
      "epoch 1.00  global step 935  test accuracy 73.22%  test loss 0.7586  (?? elapsed)\n"
      "Test accuracy: 91.2\n"
      "epoch 0.52/12  step 245  784.6 img/s  loss 1.86");
  ASSERT_EQ(log.progress.size(), 1u);
  EXPECT_EQ(log.progress[0].global_step, 244);
  EXPECT_TRUE(log.evaluations.empty());
  EXPECT_FALSE(log.final_evaluation.has_value());
  EXPECT_LT(log.trained_seconds, 0);
  EXPECT_TRUE(ParseWorkerLog(1, "").progress.empty());
}

TEST(ParseWorkerLogTest, HugeLinesAreSkippedNotFatal) {
  const std::string huge = "epoch 1.00  global step " + std::string(4 << 20, '7') + "\n";
  EXPECT_TRUE(ParseWorkerLog(0, huge + kChiefLog).evaluations.size() == 2);
  const std::string long_status = "[18:17:31 ps 0/2] step 727  examples 1  epoch 0.78  " +
                                  std::string(1 << 20, ' ') + "staleness p50/p90/max 3/3/4\n";
  EXPECT_TRUE(ParsePsLog(0, long_status).statuses.empty());
  // Just within the limit: parsed.
  const std::string workers = "0(799 img/s, seen 0s ago), ";
  std::string within =
      "[18:17:31 ps 0/2] step 727  examples 1  epoch 0.78  staleness "
      "p50/p90/max 3/3/4  workers: ";
  while (within.size() + workers.size() < 16384) within += workers;
  EXPECT_EQ(ParsePsLog(0, within).statuses.size(), 1u);
}

TEST(ParsePsLogTest, StatusLinesWithTimeSinceStart) {
  const PsLog log = ParsePsLog(
      0,
      "mobilenet-ps: ps 0 of 2 (ps: 127.0.0.1:26098,127.0.0.1:28872)\n"
      "[18:17:01 ps 0/2] no checkpoint to restore; starting fresh\n"
      "[18:17:31 ps 0/2] step 727  examples 46528  epoch 0.78  lr 0.045  pushes 727 applied, 0 "
      "stale, 0 invalid, 0 duplicate  staleness p50/p90/max 3/3/4  workers: 0(799 img/s, seen "
      "0s ago), 1(782 img/s, seen 0s ago)\n"
      "[18:25:01 ps 0/2] step 11190  examples 716160  epoch 11.94  lr 0.003865  pushes 11190 "
      "applied, 0 stale, 0 invalid, 0 duplicate  staleness p50/p90/max 3/3/42  workers: 0(984 "
      "img/s, seen 0s ago), 1 finished (792 img/s, seen 20s ago)\n"
      "[18:25:08 ps 0/2] final checkpoint /tmp/x.mnck (step 11250)\n");
  ASSERT_EQ(log.statuses.size(), 2u);
  EXPECT_DOUBLE_EQ(log.statuses[0].seconds, 30);
  EXPECT_EQ(log.statuses[0].step, 727);
  EXPECT_EQ(log.statuses[0].staleness_max, 4);
  EXPECT_DOUBLE_EQ(log.statuses[1].seconds, 480);
  EXPECT_EQ(log.statuses[1].staleness_p50, 3);
  EXPECT_EQ(log.statuses[1].staleness_p90, 3);
  EXPECT_EQ(log.statuses[1].staleness_max, 42);
  ASSERT_EQ(log.statuses[1].workers.size(), 2u);
  EXPECT_EQ(log.statuses[1].workers[1].task, 1);
  EXPECT_DOUBLE_EQ(log.statuses[1].workers[1].images_per_sec, 792);
}

TEST(ParsePsLogTest, TheLastStalenessDistributionLineWins) {
  // As parameter_server/ps_runner.cc's FormatStalenessCounts writes it (its test pins it).
  const PsLog log =
      ParsePsLog(1,
                 "[18:25:08 ps 1/2] staleness of the 3 pushes applied by this run: 0:3\n"
                 "[18:26:08 ps 1/2] staleness of the 1236 pushes applied by this run: 0:200 1:1000 "
                 "2:34 63+:2\n"
                 "[18:26:09 ps 1/2] training is over; shutting down\n");
  ASSERT_EQ(log.staleness_counts.size(), 4u);
  EXPECT_EQ(log.staleness_counts[1].staleness, 1);
  EXPECT_EQ(log.staleness_counts[1].pushes, 1000);
  EXPECT_FALSE(log.staleness_counts[1].or_more);
  EXPECT_EQ(log.staleness_counts[3].staleness, 63);
  EXPECT_EQ(log.staleness_counts[3].pushes, 2);
  EXPECT_TRUE(log.staleness_counts[3].or_more);
  EXPECT_TRUE(ParsePsLog(0,
                         "[18:25:08 ps 0/2] staleness of the 0 pushes applied by this run: "
                         "none\n")
                  .staleness_counts.empty());
}

TEST(ParsePsLogTest, ClockPassingMidnight) {
  const PsLog log =
      ParsePsLog(0,
                 "[23:59:50 ps 0/1] serving\n"
                 "[00:00:20 ps 0/1] step 5  examples 320  epoch 0.01  lr 0.1  pushes 5 applied  "
                 "staleness p50/p90/max 0/1/1\n");
  ASSERT_EQ(log.statuses.size(), 1u);
  EXPECT_DOUBLE_EQ(log.statuses[0].seconds, 30);
  EXPECT_TRUE(log.statuses[0].workers.empty());
}

TEST(ParseShortDurationTest, FormatsOfFormatDuration) {
  EXPECT_EQ(ParseShortDuration("12s"), 12);
  EXPECT_EQ(ParseShortDuration("4m05s"), 245);
  EXPECT_EQ(ParseShortDuration("1h02m"), 3720);
  EXPECT_FALSE(ParseShortDuration("?").has_value());
  EXPECT_FALSE(ParseShortDuration("4m5").has_value());
}

class ReadRunLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("run_log_test_", ::testing::UnitTest::GetInstance()->random_seed(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  std::filesystem::path dir_;
};

TEST_F(ReadRunLogTest, ReadsWorkersAndServersInTaskOrder) {
  Write("worker-1.log", "");
  Write("worker-0.log", kChiefLog);
  Write("ps-0.log", "[18:17:01 ps 0/1] serving\n");
  Write("notes.txt", "Test accuracy: 1.00% (1/100), test loss 9 at global step 1\n");
  const absl::StatusOr<RunLog> run = ReadRunLog(dir_.string());
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->workers.size(), 2u);
  EXPECT_EQ(run->workers[0].task, 0);
  EXPECT_EQ(run->workers[1].task, 1);
  ASSERT_NE(run->chief(), nullptr);
  EXPECT_EQ(run->chief()->evaluations.size(), 2u);
  EXPECT_EQ(run->servers.size(), 1u);
}

TEST_F(ReadRunLogTest, EmptyOrMissingFolderIsAnErrorNamingIt) {
  const absl::StatusOr<RunLog> empty = ReadRunLog(dir_.string());
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(empty.status().message().find(dir_.string()), std::string::npos);
  const std::string missing = (dir_ / "no-such-run").string();
  const absl::StatusOr<RunLog> absent = ReadRunLog(missing);
  EXPECT_EQ(absent.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(absent.status().message().find(missing), std::string::npos);
}

}  // namespace
}  // namespace mobilenet
