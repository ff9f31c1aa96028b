#include "parameter_server/core/sync_replicas.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parameter_server/core/tiny_layouts_for_test.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

TEST(ParseReplicasToAggregateTest, EmptyIsEveryWorkerAllIsZeroAndNumbersInRange) {
  EXPECT_EQ(*ParseReplicasToAggregate("", 3), 3);
  EXPECT_EQ(*ParseReplicasToAggregate("all", 3), 0);
  EXPECT_EQ(*ParseReplicasToAggregate("1", 3), 1);
  EXPECT_EQ(*ParseReplicasToAggregate("2", 3), 2);
  EXPECT_EQ(*ParseReplicasToAggregate("3", 3), 3);
}

TEST(ParseReplicasToAggregateTest, RefusesValuesOutsideTheClusterNamingTheFlag) {
  for (const char* text : {"0", "4", "-1", "x", "2.5", "ALL"}) {
    const absl::StatusOr<int> parsed = ParseReplicasToAggregate(text, 3);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(parsed.status().message(), HasSubstr("--replicas_to_aggregate")) << text;
    EXPECT_THAT(parsed.status().message(), HasSubstr("[1, 3]")) << text;
  }
}

MemberLiveness Member(int32_t id, double seconds_since_seen, bool finished = false) {
  MemberLiveness member;
  member.worker_id = id;
  member.seconds_since_seen = seconds_since_seen;
  member.finished = finished;
  return member;
}

SyncReplicasConfig Config(int replicas_to_aggregate) {
  SyncReplicasConfig config;
  config.enabled = true;
  config.replicas_to_aggregate = replicas_to_aggregate;
  config.worker_liveness = absl::Seconds(30);
  return config;
}

TEST(SyncGradientsNeededTest, AFixedNumberIsCappedByTheUnfinishedMembers) {
  const std::vector<MemberLiveness> all_alive = {Member(0, 1), Member(1, 2), Member(2, 3)};
  EXPECT_EQ(SyncGradientsNeeded(Config(2), all_alive), 2);
  EXPECT_EQ(SyncGradientsNeeded(Config(3), all_alive), 3);
  EXPECT_EQ(SyncGradientsNeeded(Config(1), all_alive), 1);
  // One finished: 3 of 3 needs only the 2 left; 2 of 3 still 2.
  const std::vector<MemberLiveness> one_finished = {Member(0, 1), Member(1, 2, true), Member(2, 3)};
  EXPECT_EQ(SyncGradientsNeeded(Config(3), one_finished), 2);
  EXPECT_EQ(SyncGradientsNeeded(Config(2), one_finished), 2);
  // Two finished: 1 left.
  const std::vector<MemberLiveness> two_finished = {Member(0, 1, true), Member(1, 2, true),
                                                    Member(2, 3)};
  EXPECT_EQ(SyncGradientsNeeded(Config(2), two_finished), 1);
  // All finished: still at least 1.
  const std::vector<MemberLiveness> all_finished = {Member(0, 1, true), Member(1, 2, true),
                                                    Member(2, 3, true)};
  EXPECT_EQ(SyncGradientsNeeded(Config(2), all_finished), 1);
}

TEST(SyncGradientsNeededTest, DeadAndUnseenMembersStillCountTowardsAFixedNumber) {
  // Worker 1 silent for 100 s (> 30 s), worker 2 never heard from: the step waits for them.
  const std::vector<MemberLiveness> members = {Member(0, 1), Member(1, 100), Member(2, -1)};
  EXPECT_EQ(SyncGradientsNeeded(Config(3), members), 3);
  EXPECT_EQ(SyncGradientsNeeded(Config(2), members), 2);
}

TEST(SyncGradientsNeededTest, AllMeansTheLiveUnfinishedMembersAndAtLeastOne) {
  // Alive: seen within the liveness (30 s, exclusive), and not finished.
  const std::vector<MemberLiveness> members = {Member(0, 0), Member(1, 29.9), Member(2, 30),
                                               Member(3, -1), Member(4, 5, true)};
  EXPECT_EQ(SyncGradientsNeeded(Config(0), members), 2);
  const std::vector<MemberLiveness> nobody = {Member(0, -1), Member(1, 100)};
  EXPECT_EQ(SyncGradientsNeeded(Config(0), nobody), 1);
  EXPECT_EQ(SyncGradientsNeeded(Config(0), {}), 1);
}

TEST(SyncWaitingReasonTest, EmptyWhenEnoughAreAlive) {
  const std::vector<MemberLiveness> members = {Member(0, 1), Member(1, 2), Member(2, 100)};
  EXPECT_EQ(SyncWaitingReason(Config(2), 7, 1, 2, members), "");
  EXPECT_EQ(SyncWaitingReason(Config(2), 7, 0, 1, members), "");
}

TEST(SyncWaitingReasonTest, NamesTheMissingWorkers) {
  const std::vector<MemberLiveness> members = {Member(0, 1), Member(1, 35), Member(2, -1),
                                               Member(3, 200, true)};
  EXPECT_EQ(SyncWaitingReason(Config(3), 120, 1, 3, members),
            "step 120 waits: 1 of 3 gradients, 1 live worker (worker 1 not heard from for 35 s, "
            "worker 2 not heard from yet)");
  const std::vector<MemberLiveness> two_alive = {Member(0, 1), Member(1, 2), Member(2, 40)};
  EXPECT_EQ(SyncWaitingReason(Config(3), 5, 2, 3, two_alive),
            "step 5 waits: 2 of 3 gradients, 2 live workers (worker 2 not heard from for 40 s)");
}

// A shard of the whole tiny model: 17 parameters, 6 statistics.
class SyncGradientsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ParameterShardConfig config;
    config.optimizer.kind = OptimizerKind::kSgd;
    config.learning_rate.examples_per_epoch = 100;
    absl::StatusOr<std::unique_ptr<ParameterShard>> shard = ParameterShard::Create(
        TinyParameters(), TinyState(), WholeModelShardSpec(TinyParameters(), TinyState()), config);
    ASSERT_TRUE(shard.ok()) << shard.status();
    shard_ = std::move(*shard);
  }

  // Stores `gradients` (and `stats`, may be empty) as `worker`'s for `step`.
  void Store(SyncGradients& held, int32_t worker, int64_t step, int64_t examples,
             const std::vector<float>& gradients, const std::vector<float>& stats) {
    absl::StatusOr<ShardUpdate> update =
        ShardUpdate::Check(*shard_, "test", 0, examples, gradients, stats);
    ASSERT_TRUE(update.ok()) << update.status();
    held.Store(worker, step, /*request_id=*/100 + worker, /*reported_steps=*/10 + worker,
               /*images_per_sec=*/1.5 * worker, *update);
  }

  std::unique_ptr<ParameterShard> shard_;
};

std::vector<float> Ramp(float start, float step, int n) {
  std::vector<float> values(n);
  for (int i = 0; i < n; ++i) values[i] = start + step * i;
  return values;
}

TEST_F(SyncGradientsTest, AveragesTheNamedMembersHoldingTheStep) {
  SyncGradients held(3, 17, 6);
  EXPECT_EQ(held.held(0).step, -1);
  EXPECT_EQ(held.allocated_floats(), 0);
  // Exactly representable values: the average is exact.
  const std::vector<float> g0 = Ramp(1.0f, 0.25f, 17), g1 = Ramp(-3.0f, 0.5f, 17),
                           g2 = Ramp(100.0f, 1.0f, 17);
  Store(held, 0, 4, 8, g0, std::vector<float>(6, 2.0f));
  Store(held, 1, 4, 16, g1, std::vector<float>(6, 4.0f));
  Store(held, 2, 4, 32, g2, std::vector<float>(6, 64.0f));
  EXPECT_EQ(held.held(1).step, 4);
  EXPECT_EQ(held.held(1).request_id, 101u);
  EXPECT_EQ(held.held(1).examples, 16);
  EXPECT_EQ(held.held(1).reported_steps, 11);
  EXPECT_DOUBLE_EQ(held.held(1).images_per_sec, 1.5);
  EXPECT_TRUE(held.held(1).has_stats);
  EXPECT_EQ(held.allocated_floats(), 3 * (17 + 6));

  std::vector<float> gradients, stats;
  const SyncGradients::Average average = held.AverageOf(4, {0, 1}, gradients, stats);
  EXPECT_EQ(average.gradients, 2);
  EXPECT_EQ(average.stats, 2);
  ASSERT_EQ(gradients.size(), 17u);
  for (int i = 0; i < 17; ++i) {
    // (1 + 0.25 i + -3 + 0.5 i) / 2 = -1 + 0.375 i
    EXPECT_EQ(gradients[i], -1.0f + 0.375f * i) << i;
  }
  EXPECT_EQ(stats, std::vector<float>(6, 3.0f));
}

TEST_F(SyncGradientsTest, MembersHoldingAnotherStepAreLeftOut) {
  SyncGradients held(3, 17, 6);
  Store(held, 0, 4, 8, std::vector<float>(17, 2.0f), {});
  Store(held, 1, 3, 8, std::vector<float>(17, 1000.0f), {});  // an older step
  Store(held, 2, 4, 8, std::vector<float>(17, 6.0f), {});
  std::vector<float> gradients, stats;
  SyncGradients::Average average = held.AverageOf(4, {0, 1, 2}, gradients, stats);
  EXPECT_EQ(average.gradients, 2);
  EXPECT_EQ(gradients, std::vector<float>(17, 4.0f));
  // Newer gradients replace what a member held.
  Store(held, 1, 4, 8, std::vector<float>(17, 10.0f), {});
  average = held.AverageOf(4, {0, 1, 2}, gradients, stats);
  EXPECT_EQ(average.gradients, 3);
  EXPECT_EQ(gradients, std::vector<float>(17, 6.0f));
  // Nobody holding the step: zeros and no gradients counted.
  average = held.AverageOf(9, {0, 1, 2}, gradients, stats);
  EXPECT_EQ(average.gradients, 0);
  EXPECT_EQ(gradients, std::vector<float>(17, 0.0f));
  // Ids outside the cluster are ignored.
  average = held.AverageOf(4, {-1, 3, 2}, gradients, stats);
  EXPECT_EQ(average.gradients, 1);
  EXPECT_EQ(gradients, std::vector<float>(17, 6.0f));
}

TEST_F(SyncGradientsTest, StatisticsAreAveragedOverThoseThatSentThemOrCleared) {
  SyncGradients held(3, 17, 6);
  Store(held, 0, 1, 8, std::vector<float>(17, 1.0f), std::vector<float>(6, 5.0f));
  Store(held, 1, 1, 8, std::vector<float>(17, 3.0f), {});
  Store(held, 2, 1, 8, std::vector<float>(17, 5.0f), std::vector<float>(6, 7.0f));
  EXPECT_FALSE(held.held(1).has_stats);
  std::vector<float> gradients, stats;
  SyncGradients::Average average = held.AverageOf(1, {0, 1, 2}, gradients, stats);
  EXPECT_EQ(average.gradients, 3);
  EXPECT_EQ(average.stats, 2);
  EXPECT_EQ(gradients, std::vector<float>(17, 3.0f));
  EXPECT_EQ(stats, std::vector<float>(6, 6.0f));  // (5 + 7) / 2, not / 3

  average = held.AverageOf(1, {1}, gradients, stats);
  EXPECT_EQ(average.gradients, 1);
  EXPECT_EQ(average.stats, 0);
  EXPECT_EQ(gradients, std::vector<float>(17, 3.0f));
  EXPECT_TRUE(stats.empty());

  // A member that sent statistics once and then none: its old ones are not used.
  Store(held, 0, 2, 8, std::vector<float>(17, 1.0f), {});
  average = held.AverageOf(2, {0}, gradients, stats);
  EXPECT_EQ(average.stats, 0);
  EXPECT_TRUE(stats.empty());
}

}  // namespace
}  // namespace mobilenet
