#include "parameter_server/shard_checkpointer.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parameter_server/flat_checkpoint_codec_for_test.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

ParameterLayout TinyParameters() {
  ParameterLayout layout;
  layout.Add("a/weights", {1, 1, 2, 3}, TensorRole::kConvWeights);
  layout.Add("fc/biases", {2}, TensorRole::kFullyConnectedBias);
  return layout;
}

ParameterLayout TinyState() {
  ParameterLayout layout;
  layout.Add("a/BatchNorm/moving_mean", {3}, TensorRole::kMovingMean);
  return layout;
}

ShardCheckpointCodec FlatCodec() { return FlatCheckpointCodecForTest("tiny"); }

class ShardCheckpointerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("shard_checkpointer_test_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<ParameterShard> MakeShard() {
    ParameterShardConfig config;
    config.seed = 3;
    config.optimizer.kind = OptimizerKind::kSgd;
    config.learning_rate.initial_learning_rate = 0.5f;
    config.learning_rate.decay_factor = 1.0f;
    config.learning_rate.examples_per_epoch = 100;
    auto shard = ParameterShard::Create(params_, state_, WholeModelShardSpec(params_, state_),
                                        config);
    EXPECT_TRUE(shard.ok()) << shard.status();
    return std::move(*shard);
  }

  // One push of gradient `g` everywhere, computed from the current version.
  static void PushOnce(ParameterShard& shard, float g, uint64_t request_id) {
    std::vector<float> gradients(shard.parameter_count(), g);
    ShardPushRequest push;
    push.request_id = request_id;
    push.computed_from_version = shard.status().version;
    push.example_count = 10;
    push.gradients = gradients;
    ASSERT_TRUE(shard.ApplyGradients(push).ok());
  }

  static std::vector<float> Weights(const ParameterShard& shard) {
    std::vector<float> w(shard.parameter_count());
    EXPECT_TRUE(shard.Pull(absl::MakeSpan(w), {}).ok());
    return w;
  }

  std::unique_ptr<ShardCheckpointer> MakeCheckpointer(ParameterShard* shard, int keep = 3) {
    return std::make_unique<ShardCheckpointer>(shard, FlatCodec(), dir_.string(),
                                               ShardCheckpointPrefix(1, 2), keep);
  }

  ParameterLayout params_ = TinyParameters();
  ParameterLayout state_ = TinyState();
  std::filesystem::path dir_;
};

TEST_F(ShardCheckpointerTest, PrefixNamesTaskAndCount) {
  EXPECT_EQ(ShardCheckpointPrefix(1, 2), "ps-1-of-2");
}

TEST_F(ShardCheckpointerTest, RestoreOfAnEmptyFolderIsNotFound) {
  auto shard = MakeShard();
  auto checkpointer = MakeCheckpointer(shard.get());
  EXPECT_EQ(checkpointer->Restore().status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ShardCheckpointerTest, SaveThenRestoreIntoAFreshShardRoundTrips) {
  auto shard = MakeShard();
  PushOnce(*shard, 1.0f, 1);
  PushOnce(*shard, -0.5f, 2);
  auto checkpointer = MakeCheckpointer(shard.get());
  auto saved = checkpointer->Save();
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_TRUE(saved->written);
  EXPECT_EQ(saved->step, 2);
  EXPECT_EQ(saved->path, (dir_ / "ps-1-of-2-2.mnck").string());
  EXPECT_TRUE(std::filesystem::exists(saved->path));

  auto fresh = MakeShard();
  ASSERT_NE(Weights(*fresh), Weights(*shard));
  auto restorer = MakeCheckpointer(fresh.get());
  auto restored = restorer->Restore();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->step, 2);
  EXPECT_EQ(restored->examples_seen, 20);
  EXPECT_EQ(restored->path, saved->path);
  EXPECT_EQ(fresh->status().version, 2);
  EXPECT_EQ(Weights(*fresh), Weights(*shard));
  // Nothing changed since the restore: no new file.
  auto again = restorer->Save();
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->written);
  EXPECT_EQ(again->path, saved->path);
}

TEST_F(ShardCheckpointerTest, SavesOnlyWhenChangedUnlessForcedAndKeepsTheNewest) {
  auto shard = MakeShard();
  auto checkpointer = MakeCheckpointer(shard.get(), /*keep=*/2);
  ASSERT_TRUE(checkpointer->Save()->written);  // step 0: nothing written before
  EXPECT_FALSE(checkpointer->Save()->written);
  EXPECT_TRUE(checkpointer->Save(/*force=*/true)->written);
  for (uint64_t i = 1; i <= 3; ++i) {
    PushOnce(*shard, 0.1f, i);
    ASSERT_TRUE(checkpointer->Save()->written);
  }
  auto files = checkpointer->series().List();
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ((*files)[0].step, 2);
  EXPECT_EQ((*files)[1].step, 3);
}

TEST_F(ShardCheckpointerTest, RestoreSkipsACorruptNewestFileAndSaysSo) {
  auto shard = MakeShard();
  auto checkpointer = MakeCheckpointer(shard.get());
  PushOnce(*shard, 1.0f, 1);
  ASSERT_TRUE(checkpointer->Save().ok());
  const std::vector<float> at_step1 = Weights(*shard);
  PushOnce(*shard, 1.0f, 2);
  auto newest = checkpointer->Save();
  ASSERT_TRUE(newest.ok());
  {
    std::fstream f(newest->path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('\x7f');
  }
  auto fresh = MakeShard();
  auto restored = MakeCheckpointer(fresh.get())->Restore();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->step, 1);
  ASSERT_EQ(restored->skipped.size(), 1u);
  EXPECT_THAT(restored->skipped[0], HasSubstr("ps-1-of-2-2.mnck"));
  EXPECT_EQ(Weights(*fresh), at_step1);
}

TEST_F(ShardCheckpointerTest, DecodeErrorLeavesTheShardUnchanged) {
  auto shard = MakeShard();
  ShardCheckpointCodec other = FlatCodec();
  auto encode = other.encode;
  other.encode = [encode](const ShardState& s) {
    Checkpoint c = encode(s);
    c.metadata["model"] = "huge";
    return c;
  };
  PushOnce(*shard, 1.0f, 1);
  ShardCheckpointer writer(shard.get(), other, dir_.string(), ShardCheckpointPrefix(1, 2), 3);
  ASSERT_TRUE(writer.Save().ok());

  auto fresh = MakeShard();
  const std::vector<float> before = Weights(*fresh);
  auto restored = MakeCheckpointer(fresh.get())->Restore();
  ASSERT_FALSE(restored.ok());
  EXPECT_EQ(restored.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(restored.status().message()), HasSubstr("ps-1-of-2-1.mnck"));
  EXPECT_EQ(Weights(*fresh), before);
  EXPECT_EQ(fresh->status().version, 0);
}

TEST_F(ShardCheckpointerTest, PeriodicThreadWritesChangesAndStopsPromptly) {
  auto shard = MakeShard();
  auto checkpointer = MakeCheckpointer(shard.get());
  std::atomic<int> written{0};
  std::atomic<int> calls{0};
  checkpointer->StartPeriodic(absl::Milliseconds(10),
                              [&](const absl::StatusOr<SavedShardCheckpoint>& saved) {
                                ASSERT_TRUE(saved.ok()) << saved.status();
                                calls++;
                                if (saved->written) written++;
                              });
  // The first period writes step 0; later ones write only after a push.
  for (int i = 0; i < 500 && written < 1; ++i) absl::SleepFor(absl::Milliseconds(5));
  PushOnce(*shard, 1.0f, 1);
  for (int i = 0; i < 500 && written < 2; ++i) absl::SleepFor(absl::Milliseconds(5));
  for (int i = 0; i < 500 && calls < 5; ++i) absl::SleepFor(absl::Milliseconds(5));
  const absl::Time stop_start = absl::Now();
  checkpointer->StopPeriodic();
  EXPECT_LT(absl::Now() - stop_start, absl::Seconds(2));
  EXPECT_EQ(written.load(), 2);
  EXPECT_GE(calls.load(), 5);
  const int calls_at_stop = calls;
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(calls.load(), calls_at_stop);
  checkpointer->StopPeriodic();  // idempotent
  auto files = checkpointer->series().List();
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ(files->back().step, 1);
}

TEST_F(ShardCheckpointerTest, StopWakesALongInterval) {
  auto shard = MakeShard();
  auto checkpointer = MakeCheckpointer(shard.get());
  int calls = 0;
  checkpointer->StartPeriodic(absl::Hours(1),
                              [&](const absl::StatusOr<SavedShardCheckpoint>&) { ++calls; });
  const absl::Time start = absl::Now();
  checkpointer.reset();  // the destructor stops the thread
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace mobilenet
