#include "parameter_server/core/data_leases.h"

#include <set>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const absl::Time kStart = absl::FromUnixSeconds(1000);
const absl::Duration kLiveness = absl::Seconds(30);

ps::v1::DataPlan Plan(int blocks_per_epoch, int epochs, int64_t num_examples = 1000,
                      uint64_t seed = 7) {
  ps::v1::DataPlan plan;
  plan.set_num_examples(num_examples);
  plan.set_blocks_per_epoch(blocks_per_epoch);
  plan.set_epochs(epochs);
  plan.set_seed(seed);
  return plan;
}

ps::v1::DataBlock Block(int epoch, int block) {
  ps::v1::DataBlock b;
  b.set_epoch(epoch);
  b.set_block(block);
  return b;
}

std::pair<int, int> Of(const ps::v1::DataBlock& b) { return {b.epoch(), b.block()}; }

// One worker's lease call.
ps::v1::LeaseResponse Ask(DataLeases& leases, int32_t worker, const ps::v1::DataPlan& plan,
                          std::vector<ps::v1::DataBlock> completed,
                          std::vector<ps::v1::DataBlock> held, absl::Time now = kStart) {
  ps::v1::LeaseResponse response;
  const absl::Status status = leases.Lease(worker, plan, completed, held, now, response);
  EXPECT_TRUE(status.ok()) << status;
  return response;
}

MemberLiveness Member(int32_t id, double seconds_since_seen, bool finished = false) {
  MemberLiveness m;
  m.worker_id = id;
  m.seconds_since_seen = seconds_since_seen;
  m.finished = finished;
  return m;
}

TEST(DataLeasesTest, TheFirstRequestFixesThePlanAndAnotherIsRefusedNamingBoth) {
  DataLeases leases;
  EXPECT_FALSE(leases.has_plan());
  const ps::v1::LeaseResponse first = Ask(leases, 0, Plan(4, 2), {}, {});
  EXPECT_EQ(first.outcome(), ps::v1::LEASE_GRANTED);
  EXPECT_EQ(Of(first.block()), std::make_pair(0, 0));
  EXPECT_EQ(first.blocks_total(), 8);
  EXPECT_TRUE(leases.has_plan());

  ps::v1::LeaseResponse response;
  const absl::Status other = leases.Lease(1, Plan(4, 3), {}, {}, kStart, response);
  EXPECT_TRUE(absl::IsFailedPrecondition(other)) << other;
  EXPECT_THAT(other.message(), HasSubstr("3 epochs of 4 blocks"));
  EXPECT_THAT(other.message(), HasSubstr("2 epochs of 4 blocks"));
  EXPECT_EQ(leases.HeldBy(1), 0);  // nothing changed
  const absl::Status seed = leases.Lease(1, Plan(4, 2, 1000, 8), {}, {}, kStart, response);
  EXPECT_TRUE(absl::IsFailedPrecondition(seed)) << seed;
}

TEST(DataLeasesTest, ABlockOutsideThePlanIsRefusedAndChangesNothing) {
  DataLeases leases;
  const ps::v1::DataPlan plan = Plan(4, 2);
  Ask(leases, 0, plan, {}, {});
  ps::v1::LeaseResponse response;
  const absl::Status epoch = leases.Lease(0, plan, {Block(2, 0)}, {}, kStart, response);
  EXPECT_TRUE(absl::IsInvalidArgument(epoch)) << epoch;
  EXPECT_THAT(epoch.message(), HasSubstr("completed"));
  const absl::Status block = leases.Lease(0, plan, {}, {Block(0, 4)}, kStart, response);
  EXPECT_TRUE(absl::IsInvalidArgument(block)) << block;
  EXPECT_THAT(block.message(), HasSubstr("held"));
  // Worker 0 still holds its block, not completed, nothing late.
  EXPECT_EQ(leases.HeldBy(0), 1);
  ps::v1::DataLeaseStatus status;
  leases.FillStatus(kStart, status);
  EXPECT_EQ(status.late_completions(), 0);
  EXPECT_EQ(status.blocks_completed(), 0);
}

TEST(DataLeasesTest, EveryBlockOfEveryEpochIsLeasedExactlyOnceThenDone) {
  DataLeases leases;
  const ps::v1::DataPlan plan = Plan(5, 3);
  std::set<std::pair<int, int>> seen;
  std::vector<std::vector<ps::v1::DataBlock>> holding(3);
  bool done = false;
  for (int round = 0; round < 100 && !done; ++round) {
    for (int32_t w = 0; w < 3; ++w) {
      // Completes what it held, then asks.
      const ps::v1::LeaseResponse r = Ask(leases, w, plan, holding[w], {});
      holding[w].clear();
      if (r.outcome() == ps::v1::LEASE_GRANTED) {
        EXPECT_TRUE(seen.insert(Of(r.block())).second) << r.ShortDebugString();
        holding[w].push_back(r.block());
      } else if (r.outcome() == ps::v1::LEASE_DONE) {
        done = true;
        EXPECT_EQ(r.blocks_completed(), 15);
      }
    }
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(seen.size(), 15u);
  // In order: epoch 0 before epoch 1.
  EXPECT_EQ(*seen.begin(), std::make_pair(0, 0));
  ps::v1::DataLeaseStatus status;
  leases.FillStatus(kStart, status);
  EXPECT_EQ(status.blocks_completed(), 15);
  EXPECT_EQ(status.epoch(), 3);
  EXPECT_EQ(status.blocks_reassigned(), 0);
  EXPECT_EQ(status.late_completions(), 0);
}

TEST(DataLeasesTest, AtMostTwoBlocksHeldThenWait) {
  DataLeases leases;
  const ps::v1::DataPlan plan = Plan(10, 1);
  const ps::v1::LeaseResponse a = Ask(leases, 0, plan, {}, {});
  const ps::v1::LeaseResponse b = Ask(leases, 0, plan, {}, {a.block()});
  EXPECT_EQ(b.outcome(), ps::v1::LEASE_GRANTED);
  EXPECT_EQ(Of(b.block()), std::make_pair(0, 1));
  const ps::v1::LeaseResponse c = Ask(leases, 0, plan, {}, {a.block(), b.block()});
  EXPECT_EQ(c.outcome(), ps::v1::LEASE_WAIT);
  EXPECT_EQ(leases.HeldBy(0), 2);
  // Completing one makes room.
  const ps::v1::LeaseResponse d = Ask(leases, 0, plan, {a.block()}, {b.block()});
  EXPECT_EQ(d.outcome(), ps::v1::LEASE_GRANTED);
  EXPECT_EQ(Of(d.block()), std::make_pair(0, 2));
  EXPECT_EQ(d.blocks_completed(), 1);
}

TEST(DataLeasesTest, WaitWhileOthersHoldTheLastBlocksThenDone) {
  DataLeases leases;
  const ps::v1::DataPlan plan = Plan(2, 1, 10);
  const ps::v1::LeaseResponse a = Ask(leases, 0, plan, {}, {});
  const ps::v1::LeaseResponse b = Ask(leases, 1, plan, {}, {});
  const ps::v1::LeaseResponse c = Ask(leases, 2, plan, {}, {});
  EXPECT_EQ(c.outcome(), ps::v1::LEASE_WAIT);
  Ask(leases, 0, plan, {a.block()}, {});
  const ps::v1::LeaseResponse still = Ask(leases, 2, plan, {}, {});
  EXPECT_EQ(still.outcome(), ps::v1::LEASE_WAIT);  // worker 1's block may come back
  const ps::v1::LeaseResponse last = Ask(leases, 1, plan, {b.block()}, {});
  EXPECT_EQ(last.outcome(), ps::v1::LEASE_DONE);
  EXPECT_EQ(last.blocks_completed(), 2);
  EXPECT_EQ(Ask(leases, 2, plan, {}, {}).outcome(), ps::v1::LEASE_DONE);
}

TEST(DataLeasesTest, ASilentMembersBlocksReturnAndGoToAnotherWorker) {
  DataLeases leases;
  const ps::v1::DataPlan plan = Plan(10, 1);
  const ps::v1::LeaseResponse a = Ask(leases, 1, plan, {}, {});
  const ps::v1::LeaseResponse b = Ask(leases, 1, plan, {}, {a.block()});
  Ask(leases, 0, plan, {}, {});  // block 2
  // Worker 1 stays silent past the liveness; worker 0 was heard from just now.
  const std::vector<ReturnedBlocks> returned =
      leases.Reclaim({Member(0, 1.0), Member(1, 31.0), Member(2, -1)}, kLiveness);
  ASSERT_EQ(returned.size(), 1u);
  EXPECT_EQ(returned[0].worker_id, 1);
  EXPECT_EQ(returned[0].blocks, 2);
  EXPECT_EQ(leases.HeldBy(1), 0);
  ps::v1::DataLeaseStatus status;
  leases.FillStatus(kStart, status);
  EXPECT_EQ(status.blocks_returned(), 2);
  EXPECT_EQ(status.blocks_reassigned(), 2);
  // Worker 2 gets the lowest returned block first, then the next.
  const ps::v1::LeaseResponse c = Ask(leases, 2, plan, {}, {});
  EXPECT_EQ(Of(c.block()), Of(a.block()));
  const ps::v1::LeaseResponse d = Ask(leases, 2, plan, {}, {c.block()});
  EXPECT_EQ(Of(d.block()), Of(b.block()));
  // Worker 1 comes back and reports a taken block completed: late, ignored.
  const ps::v1::LeaseResponse late = Ask(leases, 1, plan, {a.block()}, {});
  EXPECT_EQ(Of(late.block()), std::make_pair(0, 3));
  leases.FillStatus(kStart, status);
  EXPECT_EQ(status.late_completions(), 1);
  EXPECT_EQ(leases.HeldBy(2), 2);  // still worker 2's
  EXPECT_EQ(status.blocks_completed(), 0);
}

TEST(DataLeasesTest, AFinishedMembersBlocksReturn) {
  DataLeases leases;
  const ps::v1::DataPlan plan = Plan(10, 1);
  Ask(leases, 0, plan, {}, {});
  const std::vector<ReturnedBlocks> returned =
      leases.Reclaim({Member(0, 0.0, /*finished=*/true)}, kLiveness);
  ASSERT_EQ(returned.size(), 1u);
  EXPECT_EQ(leases.HeldBy(0), 0);
  EXPECT_TRUE(leases.Reclaim({Member(0, 0.0, true)}, kLiveness).empty());
}

TEST(DataLeasesTest, ARestartedWorkerGetsItsLostBlockBackFirst) {
  DataLeases leases;
  const ps::v1::DataPlan plan = Plan(10, 1);
  const ps::v1::LeaseResponse a = Ask(leases, 3, plan, {}, {});
  const ps::v1::LeaseResponse b = Ask(leases, 3, plan, {}, {a.block()});
  // Restarted: holds nothing.
  const ps::v1::LeaseResponse again = Ask(leases, 3, plan, {}, {}, kStart + absl::Seconds(5));
  EXPECT_EQ(again.outcome(), ps::v1::LEASE_GRANTED);
  EXPECT_EQ(Of(again.block()), Of(a.block()));
  EXPECT_EQ(leases.HeldBy(3), 1);
  ps::v1::DataLeaseStatus status;
  leases.FillStatus(kStart + absl::Seconds(6), status);
  EXPECT_EQ(status.blocks_reassigned(), 2);
  EXPECT_EQ(status.blocks_returned(), 1);  // b waits for whoever asks next
  ASSERT_EQ(status.held_size(), 1);
  EXPECT_DOUBLE_EQ(status.held(0).seconds_held(), 1.0);  // leased again at the restart
  const ps::v1::LeaseResponse next = Ask(leases, 3, plan, {}, {again.block()});
  EXPECT_EQ(Of(next.block()), Of(b.block()));
}

TEST(DataLeasesTest, RestoreAfterExportNeitherLosesNorRepeatsACompletedBlock) {
  DataLeases leases;
  const ps::v1::DataPlan plan = Plan(4, 2);
  EXPECT_FALSE(leases.Export().has_value());
  const ps::v1::LeaseResponse a = Ask(leases, 0, plan, {}, {});           // g0
  const ps::v1::LeaseResponse b = Ask(leases, 1, plan, {}, {});           // g1
  const ps::v1::LeaseResponse c = Ask(leases, 0, plan, {a.block()}, {});  // g0 done; g2
  Ask(leases, 1, plan, {}, {}, kStart + absl::Seconds(1));                // lost g1: leased again
  leases.Reclaim({Member(0, 0), Member(1, 40)}, kLiveness);               // g1 returned
  const std::optional<DataLeaseState> state = leases.Export();
  ASSERT_TRUE(state.has_value());
  EXPECT_TRUE(CheckDataLeaseState(*state).ok());
  EXPECT_EQ(state->next_block, 3);
  EXPECT_THAT(state->open_blocks, ElementsAre(1, 2));
  EXPECT_EQ(state->blocks_reassigned, 2);

  DataLeases restored;
  ASSERT_TRUE(restored.Restore(state).ok());
  EXPECT_EQ(restored.blocks_completed(), 1);
  // Worker 0 restarted with the server: it reports g2 completed late (all open blocks
  // wait after a restore) and is leased the lowest open block.
  std::set<std::pair<int, int>> seen = {Of(a.block())};
  std::vector<ps::v1::DataBlock> holding;
  const ps::v1::LeaseResponse first = Ask(restored, 0, plan, {c.block()}, {});
  EXPECT_EQ(Of(first.block()), Of(b.block()));
  ps::v1::LeaseResponse r = first;
  while (r.outcome() == ps::v1::LEASE_GRANTED) {
    EXPECT_TRUE(seen.insert(Of(r.block())).second) << r.ShortDebugString();
    r = Ask(restored, 0, plan, {r.block()}, {});
  }
  EXPECT_EQ(r.outcome(), ps::v1::LEASE_DONE);
  EXPECT_EQ(seen.size(), 8u);
  EXPECT_EQ(r.blocks_completed(), 8);
}

TEST(DataLeasesTest, RestoreRefusesImpossibleStatesAndChangesNothing) {
  DataLeases leases;
  Ask(leases, 0, Plan(4, 2), {}, {});
  DataLeaseState state;
  state.plan = Plan(4, 2);
  state.next_block = 9;  // beyond the 8 blocks
  EXPECT_TRUE(absl::IsInvalidArgument(leases.Restore(state)));
  state.next_block = 3;
  state.open_blocks = {1, 1};
  EXPECT_TRUE(absl::IsInvalidArgument(leases.Restore(state)));
  state.open_blocks = {3};
  EXPECT_TRUE(absl::IsInvalidArgument(leases.Restore(state)));
  state.open_blocks = {};
  state.plan.set_blocks_per_epoch(0);
  EXPECT_TRUE(absl::IsInvalidArgument(leases.Restore(state)));
  state.plan = Plan(4, 2);
  state.late_completions = -1;
  EXPECT_TRUE(absl::IsInvalidArgument(leases.Restore(state)));
  EXPECT_EQ(leases.HeldBy(0), 1);
  ASSERT_TRUE(leases.Restore(std::nullopt).ok());
  EXPECT_FALSE(leases.has_plan());
}

}  // namespace
}  // namespace mobilenet
