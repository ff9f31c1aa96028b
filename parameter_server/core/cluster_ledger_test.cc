#include "parameter_server/core/cluster_ledger.h"

#include <cmath>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

const absl::Time kStart = absl::FromUnixSeconds(1000);

ps::v1::StatusResponse StatusAt(const ClusterLedger& ledger, absl::Time now) {
  ps::v1::StatusResponse status;
  ledger.FillStatus(now, status);
  return status;
}

TEST(ClusterLedgerTest, EveryMemberIsListedAndNobodyElse) {
  ClusterLedger ledger(3, 4);
  EXPECT_TRUE(ledger.IsMember(0));
  EXPECT_TRUE(ledger.IsMember(2));
  EXPECT_FALSE(ledger.IsMember(3));
  EXPECT_FALSE(ledger.IsMember(-1));
  EXPECT_FALSE(ledger.IsMember(int64_t{1} << 40));
  const ps::v1::StatusResponse status = StatusAt(ledger, kStart);
  EXPECT_EQ(status.num_workers(), 3);
  ASSERT_EQ(status.workers_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(status.workers(i).worker_id(), i);
    EXPECT_EQ(status.workers(i).seconds_since_last_seen(), -1);  // not seen yet
    EXPECT_EQ(status.workers(i).seconds_since_last_push(), -1);
    EXPECT_EQ(status.workers(i).pushes(), 0);
  }
}

TEST(ClusterLedgerTest, AContactRecordedAfterTheReadersClockIsFreshNotNever) {
  // A reader (Status, the data leases) reads the clock, then waits for the lock while a
  // worker's request records its contact a moment later.
  ClusterLedger ledger(2, 4, absl::Seconds(30));
  ledger.RecordContact(1, kStart + absl::Milliseconds(5));
  const std::vector<MemberLiveness> members = ledger.Liveness(kStart);
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0].seconds_since_seen, -1);  // never
  EXPECT_EQ(members[1].seconds_since_seen, 0);
  EXPECT_TRUE(IsAlive(members[1], absl::Seconds(30)));
  EXPECT_EQ(StatusAt(ledger, kStart).workers(1).seconds_since_last_seen(), 0);
}

TEST(ClusterLedgerTest, PushesAccumulateProgressAndReceipts) {
  ClusterLedger ledger(2, 4);
  ledger.RecordPush(1, 77, {5, 2, 0.1f}, 64, 10, 123.5, kStart);
  ledger.RecordPush(1, 78, {6, 0, 0.1f}, 32, 11, 120.0, kStart + absl::Seconds(2));
  const ps::v1::StatusResponse status = StatusAt(ledger, kStart + absl::Seconds(5));
  const ps::v1::WorkerStatus& w = status.workers(1);
  EXPECT_EQ(w.pushes(), 2);
  EXPECT_EQ(w.examples(), 96);
  EXPECT_EQ(w.steps(), 11);
  EXPECT_DOUBLE_EQ(w.images_per_sec(), 120.0);
  EXPECT_DOUBLE_EQ(w.seconds_since_last_seen(), 3.0);
  EXPECT_DOUBLE_EQ(w.seconds_since_last_push(), 3.0);
  EXPECT_EQ(status.workers(0).pushes(), 0);
  EXPECT_EQ(ledger.total_pushes(), 2);
  EXPECT_EQ(ledger.total_examples(), 96);
  std::optional<PushReceipt> receipt = ledger.FindReceipt(1, 77);
  ASSERT_TRUE(receipt.has_value());
  EXPECT_EQ(receipt->version, 5);
  EXPECT_EQ(receipt->staleness, 2);
  EXPECT_FALSE(ledger.FindReceipt(0, 77).has_value());  // another worker's id space
}

TEST(ClusterLedgerTest, OnlyTheLatestReceiptsPerWorkerAreRemembered) {
  ClusterLedger ledger(1, 2);
  for (uint64_t id = 1; id <= 3; ++id) ledger.RecordPush(0, id, {int64_t(id), 0, 0.1f}, 1, 0, 0, kStart);
  EXPECT_FALSE(ledger.FindReceipt(0, 1).has_value());
  EXPECT_TRUE(ledger.FindReceipt(0, 2).has_value());
  EXPECT_TRUE(ledger.FindReceipt(0, 3).has_value());
}

TEST(ClusterLedgerTest, TrainingEndsWithTheChiefOrTheLastMember) {
  ClusterLedger ledger(3, 4);
  EXPECT_FALSE(ledger.RecordFinish(1, false, kStart));
  EXPECT_FALSE(ledger.RecordFinish(2, false, kStart));
  EXPECT_TRUE(ledger.RecordFinish(0, false, kStart));  // every member has finished

  ClusterLedger chief(3, 4);
  EXPECT_TRUE(chief.RecordFinish(0, true, kStart));
  EXPECT_TRUE(StatusAt(chief, kStart).training_complete());
  // A push after Finish means the worker is training again.
  ClusterLedger again(2, 4);
  again.RecordFinish(1, false, kStart);
  again.RecordPush(1, 9, {1, 0, 0.1f}, 4, 1, 1, kStart);
  EXPECT_FALSE(StatusAt(again, kStart).workers(1).finished());
}

TEST(ClusterLedgerTest, ExportRestoresTheFactsButNotTheTimesOrReceipts) {
  ClusterLedger ledger(2, 4);
  ledger.RecordPush(0, 1, {1, 0, 0.1f}, 64, 1, 10, kStart);
  ledger.RecordPush(1, 2, {2, 1, 0.1f}, 64, 1, 10, kStart);
  ledger.RecordFinish(1, false, kStart);
  ledger.RecordEvaluation({2, 1000, 900, 0.25, 1234.5});
  const LedgerState state = ledger.Export();

  ClusterLedger restored(2, 4);
  ASSERT_TRUE(restored.Restore(state).ok());
  const ps::v1::StatusResponse status = StatusAt(restored, kStart);
  EXPECT_EQ(status.workers(0).pushes(), 1);
  EXPECT_EQ(status.workers(1).examples(), 64);
  EXPECT_TRUE(status.workers(1).finished());
  EXPECT_EQ(status.workers(1).seconds_since_last_seen(), -1);
  EXPECT_EQ(status.eval_examples(), 1000);
  EXPECT_DOUBLE_EQ(status.eval_accuracy(), 0.9);
  EXPECT_DOUBLE_EQ(status.eval_unix_seconds(), 1234.5);
  EXPECT_FALSE(restored.FindReceipt(0, 1).has_value());
  EXPECT_EQ(restored.total_pushes(), 2);
}

TEST(ClusterLedgerTest, ProgressOfAnotherClusterSizeBecomesUnattributed) {
  LedgerState state;
  state.workers = {{3, 192, 3, true}, {2, 128, 2, false}, {1, 64, 1, false}};
  state.unattributed_pushes = 4;
  state.unattributed_examples = 256;
  ClusterLedger ledger(2, 4);
  ASSERT_TRUE(ledger.Restore(state).ok());
  const ps::v1::StatusResponse status = StatusAt(ledger, kStart);
  EXPECT_EQ(status.pushes_unattributed(), 10);
  EXPECT_EQ(status.examples_unattributed(), 640);
  EXPECT_EQ(status.workers(0).pushes(), 0);
  EXPECT_FALSE(status.workers(0).finished());
  EXPECT_EQ(ledger.total_examples(), 640);
}

TEST(ClusterLedgerTest, ImpossibleStatesAreRefusedAndChangeNothing) {
  ClusterLedger ledger(2, 4);
  ledger.RecordPush(0, 1, {1, 0, 0.1f}, 8, 1, 1, kStart);
  struct Case {
    LedgerState state;
    const char* message;
  };
  LedgerState negative;
  negative.workers = {{-1, 0, 0, false}, {}};
  LedgerState fewer_examples;
  fewer_examples.workers = {{5, 4, 5, false}, {}};
  LedgerState bad_eval;
  bad_eval.workers = {{}, {}};
  bad_eval.evaluation = Evaluation{1, 10, 11, 0.5, 0};
  LedgerState nan_loss;
  nan_loss.workers = {{}, {}};
  nan_loss.evaluation = Evaluation{1, 10, 5, std::numeric_limits<double>::quiet_NaN(), 0};
  LedgerState bad_average;
  bad_average.workers = {{}, {}};
  bad_average.evaluation = Evaluation{1, 10, 5, 0.5, 0, 10, 12, 0.4};
  LedgerState bad_names;
  bad_names.workers = {{}, {}};
  bad_names.class_names = {"cat", "do\ng"};
  for (const Case& c : std::vector<Case>{{negative, "worker 0 has -1 pushes"},
                                         {fewer_examples, "at least one example per push"},
                                         {bad_eval, "11 correct of 10 examples"},
                                         {nan_loss, "loss nan"},
                                         {bad_average, "weight average with 12 correct of 10"},
                                         {bad_names, "ledger: class name 1 holds control"}}) {
    const absl::Status status = ledger.Restore(c.state);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(status.message(), HasSubstr(c.message));
  }
  EXPECT_EQ(ledger.total_pushes(), 1);
  EXPECT_EQ(ledger.total_examples(), 8);
}

TEST(ClusterLedgerTest, MembershipEventsJoinLeaveFinishAndJoinAgain) {
  ClusterLedger ledger(3, 4, absl::Seconds(10));
  ledger.RecordContact(1, kStart);
  ledger.RecordContact(1, kStart + absl::Seconds(5));  // still present: no event
  ledger.RecordContact(2, kStart + absl::Seconds(6));
  ledger.RecordFinish(2, false, kStart + absl::Seconds(7));
  // Worker 1 last heard from at +5: it left at +15, noticed when read at +20.
  ledger.NoteDepartures(kStart + absl::Seconds(20));
  ledger.SetLatestEventDetail(1, "2 data blocks returned");
  ledger.RecordContact(1, kStart + absl::Seconds(30));
  const ps::v1::StatusResponse status = StatusAt(ledger, kStart + absl::Seconds(31));
  using Kind = ps::v1::MembershipEvent;
  ASSERT_EQ(status.membership_events_size(), 5);
  const auto expect = [&](int i, int worker, Kind::Kind kind, double seconds) {
    const ps::v1::MembershipEvent& e = status.membership_events(i);
    EXPECT_EQ(e.worker_id(), worker) << i;
    EXPECT_EQ(e.kind(), kind) << i;
    EXPECT_DOUBLE_EQ(e.unix_seconds(), 1000 + seconds) << i;
  };
  expect(0, 1, Kind::JOINED, 0);
  expect(1, 2, Kind::JOINED, 6);
  expect(2, 2, Kind::FINISHED, 7);
  expect(3, 1, Kind::LEFT, 15);
  expect(4, 1, Kind::JOINED, 30);
  EXPECT_EQ(status.membership_events(3).detail(), "2 data blocks returned");
  // A finished member is not present: it does not leave, and joins again when heard from.
  EXPECT_EQ(ledger.MembershipEvents().size(), 5u);
}

TEST(ClusterLedgerTest, MembershipEventsKeepTheLatest64) {
  ClusterLedger ledger(1, 4, absl::Seconds(1));
  for (int i = 0; i < 40; ++i) {
    ledger.RecordContact(0, kStart + absl::Seconds(10 * i));  // each one after a departure
  }
  const std::vector<ps::v1::MembershipEvent> events = ledger.MembershipEvents();
  ASSERT_EQ(events.size(), static_cast<size_t>(kMaxMembershipEvents));
  // 40 joins and 39 departures: the oldest 15 dropped, the latest kept.
  EXPECT_EQ(events.back().kind(), ps::v1::MembershipEvent::JOINED);
  EXPECT_DOUBLE_EQ(events.back().unix_seconds(), 1000 + 390);
  EXPECT_EQ(events.front().kind(), ps::v1::MembershipEvent::LEFT);
}

TEST(ClusterLedgerTest, LivenessNoticesDeparturesAndRestoreForgetsPresence) {
  ClusterLedger ledger(2, 4, absl::Seconds(10));
  ledger.RecordContact(0, kStart);
  ledger.Liveness(kStart + absl::Seconds(11));
  ASSERT_EQ(ledger.MembershipEvents().size(), 2u);
  EXPECT_EQ(ledger.MembershipEvents()[1].kind(), ps::v1::MembershipEvent::LEFT);
  ledger.RecordContact(1, kStart);
  ASSERT_TRUE(ledger.Restore(ledger.Export()).ok());
  ledger.RecordContact(1, kStart + absl::Seconds(1));  // joins again after the restore
  EXPECT_EQ(ledger.MembershipEvents().back().kind(), ps::v1::MembershipEvent::JOINED);
  EXPECT_EQ(ledger.MembershipEvents().size(), 4u);
}

}  // namespace
}  // namespace mobilenet
