#include "report/training_report.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "report/run_log.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

RunLog SmallRun() {
  RunLog run;
  run.run_dir = "runs/<20261201>";
  run.workers.push_back(ParseWorkerLog(
      0,
      "MobileNet-V1 alpha 0.5, 56x56x1 input, batch 64, 1 thread(s), worker 0 of 2\n"
      "epoch 0.27/12  step 126  795.1 img/s  loss 2.8055  acc 19.3%  lr 0.045  global 246  "
      "stale 3.0  push 77.1ms  ETA 7m23s\n"
      "epoch 1.00  global step 935  test accuracy 73.22%  test loss 0.7586  (42s elapsed)\n"
      "epoch 2.00  global step 1900  test accuracy 81.54%  test loss 0.5362  (1m23s elapsed)\n"
      "Worker 0 trained 5625 steps (360000 examples) in 8m04s, 744.5 images/s\n"
      "Test accuracy: 91.21% (9121/10000), test loss 0.3126 at global step 11250\n"));
  run.workers.push_back(ParseWorkerLog(
      1,
      "epoch 0.26/12  step 122  773.0 img/s  loss 2.8507  acc 17.8%  lr 0.045  global 244  "
      "stale 2.0  push 85.9ms  ETA 7m36s\n"));
  run.servers.push_back(ParsePsLog(
      0,
      "[18:17:01 ps 0/2] serving\n"
      "[18:17:31 ps 0/2] step 727  examples 46528  epoch 0.78  lr 0.045  pushes 727 applied  "
      "staleness p50/p90/max 3/3/4  workers: 0(799 img/s, seen 0s ago), 1(782 img/s, seen 0s "
      "ago)\n"
      "[18:18:01 ps 0/2] step 1396  examples 89344  epoch 1.49  lr 0.036  pushes 1396 applied  "
      "staleness p50/p90/max 3/3/42  workers: 0(774 img/s, seen 0s ago), 1(763 img/s, seen 0s "
      "ago)\n"
      "[18:25:08 ps 0/2] staleness of the 11250 pushes applied by this run: 0:12 1:2000 2:5000 "
      "3:4000 4:200 42:38\n"));
  return run;
}

TEST(RenderTrainingReportTest, SummaryAndEveryChartWithItsSeries) {
  const std::string html = RenderTrainingReport(SmallRun());
  EXPECT_THAT(html, HasSubstr("<!DOCTYPE html>"));
  EXPECT_THAT(html, HasSubstr("91.21% (9121/10000) at global step 11250"));
  EXPECT_THAT(html, HasSubstr("8m04s"));
  EXPECT_THAT(html, HasSubstr("did not finish"));  // worker 1 has no summary line
  for (const char* id :
       {"accuracy-time-test-accuracy", "accuracy-step-test-accuracy", "loss-time-test-loss",
        "loss-step-test-loss", "loss-step-worker-0-training-loss",
        "loss-step-worker-1-training-loss", "images-per-second-worker-0",
        "images-per-second-worker-1", "staleness-p50", "staleness-p90", "staleness-max",
        "staleness-distribution-ps-0", "step-time-step-time", "step-time-push-latency"}) {
    EXPECT_THAT(html, HasSubstr(absl::StrCat("id=\"", id, "\""))) << id;
  }
  // Three points: two evaluations and the final one.
  EXPECT_THAT(html, HasSubstr("id=\"accuracy-step-test-accuracy\" class=\"series\" "
                              "data-series=\"test accuracy\" data-points=\"3\""));
  EXPECT_THAT(html, Not(HasSubstr("no data")));
  // Self-contained: no script, nothing fetched.
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, Not(HasSubstr("src=")));
  EXPECT_THAT(html, Not(HasSubstr("href=")));
  // The run folder's name is escaped.
  EXPECT_THAT(html, HasSubstr("runs/&lt;20261201&gt;"));
}

TEST(RenderTrainingReportTest, TheWeightAverageIsASecondSeriesOnlyWhenEvaluated) {
  EXPECT_THAT(RenderTrainingReport(SmallRun()), Not(HasSubstr("weight average")));
  RunLog run;
  run.workers.push_back(ParseWorkerLog(
      0,
      "epoch 1.00  global step 935  test accuracy 73.22%  test loss 0.7586  (42s elapsed)  "
      "weight average: test accuracy 75.10%  test loss 0.7012\n"
      "Worker 0 trained 5625 steps (360000 examples) in 8m04s, 744.5 images/s\n"
      "Test accuracy: 91.21% (9121/10000), test loss 0.3126 at global step 11250\n"
      "Weight average: test accuracy 91.60% (9160/10000), test loss 0.3001\n"));
  const std::string html = RenderTrainingReport(run);
  // One periodic evaluation and the final one, in each chart.
  EXPECT_THAT(html, HasSubstr("id=\"accuracy-step-test-accuracy-weight-average\" class=\"series\" "
                              "data-series=\"test accuracy, weight average\" data-points=\"2\""));
  EXPECT_THAT(html, HasSubstr("id=\"loss-time-test-loss-weight-average\""));
  EXPECT_THAT(html, HasSubstr("91.60% (9160/10000), test loss 0.3001"));
}

TEST(RenderTrainingReportTest, ImagesPerSecondFromWorkersWhenTheirLinesHaveTime) {
  RunLog run = SmallRun();
  run.workers[1] = ParseWorkerLog(
      1,
      "epoch 0.26/12  step 122  773.0 img/s  loss 2.8507  acc 17.8%  lr 0.045  global 244  "
      "stale 2.0  push 85.9ms  ETA 7m36s  elapsed 10s\n"
      "epoch 0.52/12  step 245  784.6 img/s  loss 1.8641  acc 48.5%  lr 0.045  global 491  "
      "stale 4.0  push 84.6ms  ETA 7m19s  elapsed 20s\n");
  const std::string html = RenderTrainingReport(run);
  EXPECT_THAT(html, HasSubstr("seconds since the worker started training"));
  EXPECT_THAT(html, HasSubstr("id=\"images-per-second-worker-1\" class=\"series\" "
                              "data-series=\"worker 1\" data-points=\"2\""));
  // Worker 0's lines have no time: not charted rather than charted on another clock.
  EXPECT_THAT(html, Not(HasSubstr("id=\"images-per-second-worker-0\"")));
  EXPECT_THAT(RenderTrainingReport(SmallRun()), HasSubstr("seconds since ps-0 started"));
}

TEST(RenderTrainingReportTest, WorkersOfPsLinesInTaskOrder) {
  RunLog run;
  run.run_dir = "twelve workers";
  run.servers.push_back(ParsePsLog(
      0,
      "[18:17:31 ps 0/1] step 7  examples 448  epoch 0.01  lr 0.045  pushes 7 applied  "
      "staleness p50/p90/max 3/3/4  workers: 10(500 img/s, seen 0s ago), 2(600 img/s, seen "
      "0s ago)\n"));
  const std::string html = RenderTrainingReport(run);
  const size_t two = html.find("id=\"images-per-second-worker-2\"");
  const size_t ten = html.find("id=\"images-per-second-worker-10\"");
  ASSERT_NE(two, std::string::npos);
  ASSERT_NE(ten, std::string::npos);
  EXPECT_LT(two, ten);
}

TEST(RenderTrainingReportTest, StalenessDistributionPerServerAsShares) {
  RunLog run = SmallRun();
  run.servers[0].staleness_counts = {{0, 10, false}, {1, 60, false}, {3, 30, false}};
  run.servers.push_back(PsLog{1, {}, {{1, 50, false}, {63, 50, true}}});
  const std::string html = RenderTrainingReport(run);
  EXPECT_THAT(html, HasSubstr("id=\"staleness-distribution-ps-0\""));
  EXPECT_THAT(html, HasSubstr("id=\"staleness-distribution-ps-1\""));
  // Every staleness from 0 to the largest is a category; the folded one says so.
  EXPECT_THAT(html, HasSubstr("<title>2 ps 0: 0</title>"));
  EXPECT_THAT(html, HasSubstr("<title>1 ps 0: 60</title>"));
  EXPECT_THAT(html, HasSubstr("<title>63+ ps 1: 50</title>"));
  // Without the line (a run killed before it ended), the chart says so.
  run = SmallRun();
  run.servers[0].staleness_counts.clear();
  const std::string without = RenderTrainingReport(run);
  const size_t chart = without.find("id=\"staleness-distribution\"");
  ASSERT_NE(chart, std::string::npos);
  EXPECT_NE(without.find("no data", chart), std::string::npos);
}

TEST(RenderTrainingReportTest, EmptyRunStillRenders) {
  RunLog run;
  run.run_dir = "empty";
  run.workers.push_back(ParseWorkerLog(0, ""));
  const std::string html = RenderTrainingReport(run);
  EXPECT_THAT(html, HasSubstr("not in the logs"));
  EXPECT_THAT(html, HasSubstr("no data"));
  EXPECT_THAT(html, HasSubstr("</html>"));
}

class WriteTrainingReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("training_report_test_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(WriteTrainingReportTest, WritesTheFileAndNoTemporary) {
  std::ofstream(dir_ / "worker-0.log")
      << "Test accuracy: 91.21% (9121/10000), test loss 0.3126 at global step 11250\n";
  const std::string out = (dir_ / "report.html").string();
  std::ofstream(out) << "old";
  ASSERT_TRUE(WriteTrainingReport(dir_.string(), out).ok());
  std::stringstream text;
  text << std::ifstream(out).rdbuf();
  EXPECT_THAT(text.str(), HasSubstr("91.21%"));
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 2);  // worker-0.log and report.html
}

TEST_F(WriteTrainingReportTest, ErrorsNameTheFolderOrFile) {
  const absl::Status empty = WriteTrainingReport(dir_.string(), (dir_ / "r.html").string());
  EXPECT_EQ(empty.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(empty.message()), HasSubstr(dir_.string()));
  const std::string unwritable = (dir_ / "no-such-folder" / "r.html").string();
  const absl::Status write = WriteFileAtomically(unwritable, "x");
  EXPECT_FALSE(write.ok());
  EXPECT_THAT(std::string(write.message()), HasSubstr(unwritable));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "r.html"));
}

}  // namespace
}  // namespace mobilenet
