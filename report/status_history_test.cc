#include "report/status_history.h"

#include <optional>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "report/training_report.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

// Server `shard`'s answer: two workers, worker 1 not seen yet unless `both`.
ps::v1::StatusResponse Status(int shard, int64_t step, bool both) {
  ps::v1::StatusResponse s;
  s.set_shard_index(shard);
  s.set_global_step(step);
  s.set_epoch(step / 100.0);
  s.set_staleness_p50(1);
  s.set_staleness_p90(2);
  s.set_staleness_max(5);
  for (int id = 0; id < 2; ++id) {
    ps::v1::WorkerStatus& w = *s.add_workers();
    w.set_worker_id(id);
    const bool seen = id == 0 || both;
    w.set_seconds_since_last_seen(seen ? 0.5 : -1);
    w.set_steps(seen ? step / 2 : 0);
    w.set_images_per_sec(seen ? 700 + id : 0);
  }
  ps::v1::StalenessCount& c = *s.add_staleness_counts();
  c.set_staleness(1);
  c.set_pushes(step);
  return s;
}

TEST(StatusHistoryTest, PollsBecomeServerStatusesWorkerProgressAndEvaluations) {
  StatusHistory history("ps-0.ps:2222,ps-1.ps:2222");
  history.Add(kStart, {Status(0, 100, false), Status(1, 100, false)});
  ps::v1::StatusResponse with_eval = Status(0, 300, true);
  with_eval.set_eval_examples(10000);
  with_eval.set_eval_accuracy(0.8154);
  with_eval.set_eval_loss(0.5362);
  with_eval.set_eval_step(250);
  with_eval.set_eval_unix_seconds(absl::ToUnixSeconds(kStart) + 7);
  history.Add(kStart + absl::Seconds(10), {with_eval, std::nullopt});  // ps 1 did not answer
  history.Add(kStart + absl::Seconds(20), {with_eval, Status(1, 301, true)});

  const RunLog& run = history.run();
  EXPECT_TRUE(run.from_status);
  EXPECT_EQ(run.run_dir, "ps-0.ps:2222,ps-1.ps:2222");
  ASSERT_EQ(run.servers.size(), 2u);
  ASSERT_EQ(run.servers[0].statuses.size(), 3u);
  ASSERT_EQ(run.servers[1].statuses.size(), 2u);
  EXPECT_DOUBLE_EQ(run.servers[1].statuses[1].seconds, 20);
  EXPECT_EQ(run.servers[0].statuses[2].step, 300);
  EXPECT_EQ(run.servers[0].statuses[2].staleness_max, 5);
  ASSERT_EQ(run.servers[0].statuses[0].workers.size(), 1u);  // worker 1 not seen yet
  ASSERT_EQ(run.servers[0].staleness_counts.size(), 1u);
  EXPECT_EQ(run.servers[0].staleness_counts[0].pushes, 300);

  ASSERT_EQ(run.workers.size(), 2u);
  ASSERT_NE(run.chief(), nullptr);
  EXPECT_EQ(run.workers[0].progress.size(), 3u);
  EXPECT_EQ(run.workers[1].progress.size(), 2u);
  EXPECT_DOUBLE_EQ(run.workers[1].progress[0].elapsed_seconds, 10);
  EXPECT_DOUBLE_EQ(run.workers[1].progress[0].images_per_sec, 701);
  // The evaluation once, although two polls saw it, at the time the chief reported it.
  ASSERT_EQ(run.chief()->evaluations.size(), 1u);
  EXPECT_EQ(run.chief()->evaluations[0].global_step, 250);
  EXPECT_DOUBLE_EQ(run.chief()->evaluations[0].accuracy_percent, 81.54);
  EXPECT_DOUBLE_EQ(run.chief()->evaluations[0].elapsed_seconds, 7);
  EXPECT_FALSE(history.training_ended());
  EXPECT_EQ(history.polls(), 3);
  EXPECT_EQ(history.unanswered_polls(), 0);

  ps::v1::StatusResponse done = Status(0, 400, true);
  done.set_training_complete(true);
  history.Add(kStart + absl::Seconds(30), {done, std::nullopt});
  EXPECT_TRUE(history.training_ended());
  history.Add(kStart + absl::Seconds(40), {std::nullopt, std::nullopt});
  EXPECT_EQ(history.unanswered_polls(), 1);
}

TEST(StatusHistoryTest, AFullStalenessListFoldsItsLastEntry) {
  StatusHistory history("h");
  ps::v1::StatusResponse s = Status(0, 10, true);
  s.clear_staleness_counts();
  for (int i = 0; i < 64; ++i) {
    ps::v1::StalenessCount& c = *s.add_staleness_counts();
    c.set_staleness(i);
    c.set_pushes(1);
  }
  history.Add(kStart, {s});
  const std::vector<StalenessCount>& counts = history.run().servers[0].staleness_counts;
  ASSERT_EQ(counts.size(), 64u);
  EXPECT_FALSE(counts[62].or_more);
  EXPECT_TRUE(counts[63].or_more);
}

TEST(StatusHistoryTest, TheReportSaysItsDataCameFromStatus) {
  StatusHistory history("127.0.0.1:2222");
  history.Add(kStart, {Status(0, 100, true)});
  history.Add(kStart + absl::Seconds(5), {Status(0, 200, true)});
  const std::string html = RenderTrainingReport(history.run());
  EXPECT_THAT(html, HasSubstr("Training report: 127.0.0.1:2222"));
  EXPECT_THAT(html, HasSubstr("seconds since the first poll"));
  EXPECT_THAT(html, HasSubstr("no evaluation reported yet"));
  EXPECT_THAT(html, HasSubstr("id=\"images-per-second-worker-1\""));
  EXPECT_THAT(html, HasSubstr("id=\"staleness-distribution-ps-0\""));
  // Nothing claims to come from a log, and no chart needs what the servers do not know.
  EXPECT_THAT(html, Not(HasSubstr(".log")));
  EXPECT_THAT(html, Not(HasSubstr("id=\"step-time\"")));
  EXPECT_THAT(html, Not(HasSubstr("training-loss")));
}

}  // namespace
}  // namespace mobilenet
